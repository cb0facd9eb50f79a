"""Loading a sweep file: YAML with places, the model, the base protocol; every problem at once.

Each problem is one line, ``file:line:col: key.path: message``, as for protocols (the
same YAML reader, :mod:`aeqlab.protocol.yamlio`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aeqlab.errors import InputError, ProtocolError
from aeqlab.protocol import Protocol, load_protocol
from aeqlab.protocol.yamlio import Located, Place, YamlProblem, parse_located, read_text
from aeqlab.sweeps.model import SweepFile


@dataclass
class Sweep:
    """A loaded sweep file and its base protocol."""

    spec: SweepFile
    path: Path
    located: Located
    protocol_path: Path
    protocol: Protocol
    protocol_data: dict[str, Any]  # the base protocol as plain data (its bases merged in)

    def place(self, *key: str | int) -> Place:
        """Where ``key`` (a path into the sweep file) is written, or its nearest written parent."""
        for n in range(len(key), -1, -1):
            got = self.located.values.get(tuple(key[:n]))
            if got is not None:
                return got
        return Place(str(self.path), 1, 1)


def key_path(loc: tuple) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _walk(located: Located, loc: tuple, shown: str) -> tuple[tuple, Place]:
    """The part of a pydantic location the file has (union tags skipped; a missing last key kept), and its place."""
    node, path = located.data, []
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        elif i == len(loc) - 1 and isinstance(node, dict) and isinstance(part, str):
            path.append(part)  # a missing key
    for n in range(len(path), -1, -1):
        got = located.values.get(tuple(path[:n]))
        if got is not None:
            return tuple(path), got
    return tuple(path), Place(shown, 1, 1)


def format_errors(exc: ValidationError, located: Located, shown: str) -> list[str]:
    """One line per problem, sorted by place."""
    lines: dict[str, tuple] = {}
    for err in exc.errors():
        loc = tuple(err["loc"])
        path, place = _walk(located, loc, shown)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            place = located.keys.get(loc, place)
            msg = "unknown key"
        line = f"{place}: {key_path(path)}: {msg}"
        lines.setdefault(line, (place.line, place.col))
    return sorted(lines, key=lambda k: lines[k])


def load_sweep(path: str | Path) -> Sweep:
    """Load and validate a sweep file and its base protocol.

    Raises
    ------
    InputError
        One line per problem, each ``file:line:col: key.path: message``.
    """
    path = Path(path)
    shown = str(path)
    try:
        located = parse_located(read_text(path, shown), shown)
    except YamlProblem as exc:
        raise InputError("\n".join(line.replace("a protocol is", "a sweep file is") for line in exc.lines)) from None
    try:
        spec = SweepFile.model_validate(located.data)
    except ValidationError as exc:
        raise InputError("\n".join(format_errors(exc, located, shown))) from None
    protocol_path = (path.parent / spec.protocol).resolve()
    where = located.values.get(("protocol",), Place(shown, 1, 1))
    if not protocol_path.is_file():
        raise InputError(f"{where}: protocol: no such protocol file {spec.protocol!r} (relative to the sweep file)")
    try:
        protocol, text = load_protocol(protocol_path)
    except ProtocolError as exc:
        raise InputError(f"{where}: protocol: the base protocol is not valid:\n{exc.message}") from None
    data = parse_located(text, str(protocol_path)).data
    data.pop("extends", None)
    return Sweep(spec, path, located, protocol_path, protocol, data)

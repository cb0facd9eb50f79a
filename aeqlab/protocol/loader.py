"""Loading protocol files: YAML → ``extends`` → the model, every problem at once.

Each problem is one line, ``file:line:col: key.path: message (hint)``; unknown keys
get a did-you-mean. A run records and hashes the *resolved* protocol: the file's own
text when it extends nothing, else the merged sections written out as YAML.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aeqlab.errors import ProtocolError
from aeqlab.protocol.clip import clip
from aeqlab.protocol.document import Protocol
from aeqlab.protocol.lint import schema_nodes, unitless_times
from aeqlab.protocol.problems import Problem, protocol_error
from aeqlab.protocol.yamlio import Located, Place, YamlProblem, dump, merge, parse_located, read_text

SCHEMA_LINE = "# yaml-language-server: $schema=aeqlab.schema.json"
MAX_EXTENDS = 16
MAX_UNKNOWN = 10  # unknown keys reported per mapping; the rest are counted ("and 4990 more")
PROTOCOL_SUFFIXES = (".yaml", ".yml")  # what an extends target may be: nothing else is opened


def load_protocol(path: str | Path) -> tuple[Protocol, str]:
    """Load and validate a protocol file.

    Parameters
    ----------
    path
        The protocol file; ``extends`` paths are relative to its folder.

    Returns
    -------
    (Protocol, str)
        The model and the resolved text (what a run records and hashes).

    Raises
    ------
    ProtocolError
        One line per problem, each ``file:line:col: key.path: message (hint)``.
    """
    path = Path(path)
    try:
        text = read_text(path, str(path))
    except YamlProblem as exc:
        raise protocol_error([Problem.from_line(line) for line in exc.lines]) from None
    return _validate_located(text, str(path), path.parent)[:2]


def load_located(path: str | Path) -> tuple[Protocol, str, Located]:
    """Like :func:`load_protocol`, plus where every value is written (for tools that point at lines)."""
    path = Path(path)
    try:
        text = read_text(path, str(path))
    except YamlProblem as exc:
        raise protocol_error([Problem.from_line(line) for line in exc.lines]) from None
    return _validate_located(text, str(path), path.parent)


@dataclass
class FileCheck:
    """What ``aeqlab validate`` says of one file: the model (None when invalid), problems, warnings."""

    file: str
    protocol: Protocol | None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        """The JSON form ``aeqlab validate --json`` writes."""
        return {
            "file": self.file,
            "ok": self.ok,
            "problems": [p.as_dict() for p in self.problems],
            "warnings": [w.as_dict() for w in self.warnings],
        }


def check_file(path: str | Path) -> FileCheck:
    """Validate one file without raising: its problems, or its model and warnings (unitless times).

    Raises nothing for a bad protocol; every problem is a :class:`Problem` with its place.
    """
    try:
        model, _, located = load_located(path)
    except ProtocolError as exc:
        problems = getattr(exc, "problems", None) or [Problem.from_line(exc.one_line())]
        return FileCheck(str(path), None, list(problems))
    return FileCheck(str(path), model, [], unitless_times(located))


def parse_protocol(text: str, source: str = "<protocol>") -> Protocol:
    """Validate protocol text; ``source`` names it in messages and anchors ``extends`` paths."""
    if "\x00" in text:
        raise protocol_error([Problem(source, 0, 0, "", "this is a binary file, not a YAML protocol")])
    return _validate_located(text, source, Path(source).parent)[0]


def _validate_located(text: str, source: str, folder: Path) -> tuple[Protocol, str, Located]:
    try:
        located = parse_located(text, source)
        located, extended = _resolve_extends(located, folder, [Path(source).resolve()])
    except YamlProblem as exc:
        raise protocol_error([Problem.from_line(line) for line in exc.lines]) from None
    data = dict(located.data)
    data.pop("extends", None)
    if extended:
        _rebase_data_path(data, located, folder)
    try:
        model = Protocol.model_validate(data, context={"base_dir": str(folder)})
    except ValidationError as exc:
        raise protocol_error(collect_problems(exc, located)) from None
    if not extended:
        return model, text, located
    header = f"{SCHEMA_LINE}\n# resolved protocol: its base protocols merged in; this is what the run used\n"
    return model, header + dump(data), located


def _rebase_data_path(data: dict, located: Located, folder: Path) -> None:
    """A data path written in a base file is relative to that file: make it relative to ``folder``."""
    dataset = data.get("dataset")
    place = located.values.get(("dataset", "path"))
    if not isinstance(dataset, dict) or not isinstance(dataset.get("path"), str) or place is None:
        return
    path = Path(dataset["path"])
    origin = Path(place.file).parent
    if not path.is_absolute() and origin.resolve() != folder.resolve():
        data["dataset"] = {**dataset, "path": os.path.relpath(origin / path, folder)}


def _resolve_extends(located: Located, folder: Path, chain: list[Path]) -> tuple[Located, bool]:
    ref = located.data.get("extends")
    if ref is None:
        return located, False
    where = located.values.get(("extends",), Place(str(chain[-1]), 1, 1))
    if not isinstance(ref, str) or not ref.strip():
        raise YamlProblem([f"{where}: extends: must be the path of a base protocol, e.g. 'extends: base.yaml'"])
    if not ref.strip().lower().endswith(PROTOCOL_SUFFIXES):
        raise YamlProblem(
            [f"{where}: extends: {clip(ref)!r} is not a protocol file (a base protocol is a .yaml or .yml file)"]
        )
    base_path = (folder / ref).resolve()
    if base_path in chain:
        cycle = " -> ".join(p.name for p in [*chain, base_path])
        raise YamlProblem([f"{where}: extends: a cycle of extends ({cycle}) (remove one of them)"])
    if len(chain) > MAX_EXTENDS:
        raise YamlProblem([f"{where}: extends: more than {MAX_EXTENDS} levels"])
    shown = os.path.normpath(folder / ref)
    try:
        base_text = read_text(base_path, clip(ref))
    except YamlProblem as exc:
        raise YamlProblem([f"{where}: extends: {line}" for line in exc.lines]) from None
    base = parse_located(base_text, shown)
    base, _ = _resolve_extends(base, base_path.parent, [*chain, base_path])
    return merge(base, located), True


# ------------------------------------------------------------------ messages
def _walk(located: Located, loc: tuple) -> tuple[tuple, Place, bool]:
    """The part of ``loc`` that exists in the data, where it is written, and whether it all exists.

    Union tags that pydantic adds to a location (``until_stable`` in
    ``method.settle.until_stable.timeout``) are skipped.
    """
    node: Any = located.data
    shown: list[Any] = []
    complete = True
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and part in node:
            node = node[part]
            shown.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            shown.append(part)
        elif isinstance(node, dict) and not last and isinstance(part, str):
            continue  # a union tag
        else:
            complete = False
            if isinstance(node, dict):
                shown.extend(p for p in loc[i:] if isinstance(p, str | int))
            break
    path = tuple(shown)
    place = None
    for n in range(len(path), -1, -1):
        place = located.values.get(path[:n])
        if place is not None:
            break
    return path, place or Place("?", 1, 1), complete


def _key_path(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{clip(str(p))}" if out else clip(str(p)))
    return out or "(top level)"


@lru_cache(maxsize=256)
def allowed_keys(path: tuple) -> list[str]:
    """Keys the schema allows in the mapping at ``path`` (for did-you-mean)."""
    keys: list[str] = []
    for s in schema_nodes(path):
        keys += [k for k in s.get("properties", {}) if k not in keys]
    return keys


def _message(err: dict, path: tuple) -> str:
    kind = err["type"]
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    if kind == "extra_forbidden":
        key = path[-1] if path else "?"
        allowed = allowed_keys(path[:-1])
        close = _close(str(key), allowed)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed here: {', '.join(allowed) or 'nothing'}"
        return f"unknown key {clip(str(key))!r} ({hint})"
    if kind == "missing":
        return f"missing required key {str(path[-1])!r} (add it)"
    if kind == "literal_error":
        options = [str(v).strip("'") for v in err.get("ctx", {}).get("expected", "").split(", ")]
        options = [o.strip("'") for part in options for o in part.split(" or ")]
        close = _close(got, options) if isinstance(got, str) else []
        return f"{msg}, got {_shown(got)}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "finite_number":
        return f"must be a finite number, got {_shown(got)} (.nan, .inf and numbers beyond 1.8e308 are not allowed)"
    if kind == "union_tag_not_found":
        return "a settle policy is a wait such as '1 ms', or a mapping with mode: fixed, until_stable or adaptive"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        tag = ctx.get("tag", got)
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip(" '")]
        close = difflib.get_close_matches(str(tag), tags, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "use " + ", ".join(repr(t) for t in tags)
        return f"unknown {ctx.get('discriminator', 'mode').strip(chr(39))} {tag!r} ({hint})"
    if kind == "model_type" or kind == "dict_type":
        return f"expected a mapping of keys, got {_shown(got)}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{msg}, got {_shown(got)}"
    return msg


def _shown(v: Any) -> str:
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    return clip(repr(v))


def _close(word: str, allowed: list[str]) -> list[str]:
    """The allowed name closest to ``word``; compares it with the allowed names only, never with other keys."""
    return difflib.get_close_matches(clip(word, 100), allowed, n=1, cutoff=0.6)


def collect_problems(exc: ValidationError, located: Located) -> list[Problem]:
    """One problem per validation error, sorted by place; unknown keys at most :data:`MAX_UNKNOWN` per mapping.

    The work is linear in the number of errors: each unknown key beyond the cap is only
    counted, and a did-you-mean compares a key with the few names allowed in its mapping.
    """
    found: dict[str, tuple[tuple[str, int, int], Problem]] = {}
    unknown: dict[tuple, int] = {}  # parent path → unknown keys seen in it
    for err in exc.errors(include_url=False, include_context=True, include_input=True):
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            parent = loc[:-1]
            unknown[parent] = unknown.get(parent, 0) + 1
            if unknown[parent] > MAX_UNKNOWN:
                continue
        path, place, complete = _walk(located, loc)
        if err["type"] == "extra_forbidden":
            place = located.keys.get(path, place)
        problem = Problem.make(place.file, place.line, place.col, _key_path(path), _message(err, path))
        found.setdefault(str(problem), ((place.file, place.line, place.col), problem))
    out = [p for _, p in sorted(found.values(), key=lambda x: x[0])]
    for parent, n in unknown.items():
        if n > MAX_UNKNOWN:
            _, place, _ = _walk(located, parent)
            where = _key_path(parent)
            out.append(
                Problem(
                    place.file,
                    place.line,
                    place.col,
                    where,
                    f"and {n - MAX_UNKNOWN} more unknown keys",
                    "see 'aeqlab schema' for the keys allowed here",
                )
            )
    return out


def format_errors(exc: ValidationError, located: Located, source: str) -> list[str]:
    """One line per validation error: ``file:line:col: key.path: message (hint)``."""
    return [str(p) for p in collect_problems(exc, located)]

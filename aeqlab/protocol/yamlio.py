"""YAML reading with a position for every value, for error messages that name a line.

:func:`read_located` turns a file into plain Python values (dicts, lists, str, int,
float, bool, None) plus a map from each key path to the file, line and column where
its value (and its key) are written. ruamel.yaml does the parsing; anchors, aliases
and ``<<`` merge keys work as YAML defines them.
"""

from __future__ import annotations

import datetime
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from aeqlab.protocol.nodes import check_nodes

Path_ = tuple[str | int, ...]
MAX_NODES = 2_000_000  # a last guard; aliases are bounded before expansion (aeqlab.protocol.nodes)
MAX_BYTES = 1 << 20  # 1 MiB: a protocol file (or an extends target) may be at most this long


@dataclass(frozen=True)
class Place:
    """Where something is written: file, 1-based line and column."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class Located:
    """Plain data and where each part of it is written."""

    data: Any
    values: dict[Path_, Place] = field(default_factory=dict)  # path → where its value starts
    keys: dict[Path_, Place] = field(default_factory=dict)  # path → where its key is written


class YamlProblem(Exception):
    """A file that is not readable YAML; ``lines`` holds one message per problem."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


_TAB_INDENT = re.compile(r"^( *)\t")


def read_text(path: Path, shown: str) -> str:
    """The text of a protocol file, or a :class:`YamlProblem` saying why it cannot be read.

    Only a regular file of at most :data:`MAX_BYTES` is read: a FIFO, a device or a folder
    is refused from its metadata alone, before it is opened.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise YamlProblem([f"{shown}: no such file (check the path)"]) from None
    except OSError as exc:
        raise YamlProblem([f"{shown}: cannot read the file: {exc.strerror or exc}"]) from None
    if stat.S_ISDIR(info.st_mode):
        raise YamlProblem([f"{shown}: is a folder, not a protocol file"])
    if not stat.S_ISREG(info.st_mode):
        raise YamlProblem([f"{shown}: is not a regular file (a device, FIFO or socket); a protocol is a YAML file"])
    if info.st_size > MAX_BYTES:
        raise YamlProblem([f"{shown}: {info.st_size} bytes, more than a protocol may have ({MAX_BYTES} bytes)"])
    try:
        # O_NONBLOCK: should the path be swapped for a FIFO after the check, opening it does not hang
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise YamlProblem([f"{shown}: is not a regular file; a protocol is a YAML file"])
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise YamlProblem([f"{shown}: cannot read the file: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_BYTES:
        raise YamlProblem([f"{shown}: more than a protocol may have ({MAX_BYTES} bytes)"])
    if b"\x00" in raw:
        raise YamlProblem([f"{shown}: this is a binary file, not a YAML protocol"])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlProblem([f"{shown}:{line}:1: the file is not UTF-8 text (save it as UTF-8)"]) from None


def parse_located(text: str, shown: str) -> Located:
    """Parse YAML text into :class:`Located` data.

    Raises
    ------
    YamlProblem
        For tabs in indentation, syntax errors, duplicate keys, or an empty file.
    """
    tabs = [
        f"{shown}:{i}:{len(m.group(1)) + 1}: a tab in the indentation (YAML indents with spaces only)"
        for i, line in enumerate(text.splitlines(), 1)
        if (m := _TAB_INDENT.match(line))
    ]
    if tabs:
        raise YamlProblem(tabs)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    constructor, parser = yaml.get_constructor_parser(text)
    try:
        node = constructor.composer.get_single_node()  # the node graph: aliases are shared, not expanded
        problems = check_nodes(node, shown, constructor) if node is not None else []
        if problems:
            raise YamlProblem(problems)
        data = constructor.construct_document(node) if node is not None else None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        place = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else f"{shown}:1:1"
        what = " ".join(str(exc.problem or exc.context or "not valid YAML").split())
        if "duplicate key" in str(exc):
            what = "duplicate key " + what.split('"')[1] if '"' in what else what
            what += " (each key once per mapping)"
        raise YamlProblem([f"{place}: YAML syntax: {what}"]) from None
    except RecursionError:
        raise YamlProblem([f"{shown}:1:1: nested too deeply"]) from None
    except (YAMLError, ValueError, TypeError, OverflowError, KeyError) as exc:
        raise YamlProblem(
            [f"{shown}:1:1: not valid YAML: {' '.join(str(exc).split()) or type(exc).__name__}"]
        ) from None
    finally:
        parser.dispose()
    if data is None:
        raise YamlProblem([f"{shown}: the file is empty (start from 'aeqlab init')"])
    out = Located(None)
    counter = [0]
    try:
        out.data = _plain(data, (), shown, out, counter, set())
    except RecursionError:
        raise YamlProblem([f"{shown}:1:1: nested too deeply"]) from None
    if not isinstance(out.data, dict):
        raise YamlProblem([f"{shown}:1:1: a protocol is a mapping of sections (name, instruments, roles, ...)"])
    if not out.values:
        out.values[()] = Place(shown, 1, 1)
    return out


def _place(shown: str, lc: tuple[int, int] | None) -> Place | None:
    return Place(shown, lc[0] + 1, lc[1] + 1) if lc else None


def _plain(node: Any, path: Path_, shown: str, out: Located, counter: list[int], active: set[int]) -> Any:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise YamlProblem([f"{shown}: aliases expand to more than {MAX_NODES} values"])
    if path == ():
        lc = getattr(node, "lc", None)
        out.values[()] = Place(shown, (lc.line if lc else 0) + 1, (lc.col if lc else 0) + 1)
    if isinstance(node, CommentedMap | CommentedSeq | dict | list):
        if id(node) in active:
            raise YamlProblem([f"{shown}: a recursive alias at {'.'.join(map(str, path))}"])
        active = active | {id(node)}
    if isinstance(node, dict):
        result: dict[str, Any] = {}
        for k, v in node.items():
            key = k if isinstance(k, str) else str(k)
            sub = (*path, key)
            lc = getattr(node, "lc", None)
            try:
                kp = _place(shown, lc.key(k)) if lc else None
                vp = _place(shown, lc.value(k)) if lc else None
            except (KeyError, TypeError, AttributeError):  # merged (<<) keys have no place of their own
                kp = vp = None
            parent = out.values.get(path)
            out.keys[sub] = kp or parent or Place(shown, 1, 1)
            out.values[sub] = (kp if isinstance(v, dict | list) else vp) or out.keys[sub]
            result[key] = _plain(v, sub, shown, out, counter, active)
        return result
    if isinstance(node, list):
        items = []
        lc = getattr(node, "lc", None)
        for i, v in enumerate(node):
            sub = (*path, i)
            try:
                p = _place(shown, lc.item(i)) if lc else None
            except (KeyError, TypeError, AttributeError):
                p = None
            out.values[sub] = out.keys[sub] = p or out.values.get(path) or Place(shown, 1, 1)
            items.append(_plain(v, sub, shown, out, counter, active))
        return items
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, datetime.date):
        return node.isoformat()
    if isinstance(node, bytes):
        return node
    return str(node)


def merge(base: Located, child: Located) -> Located:
    """``child`` over ``base``: mappings merge key by key, anything else is replaced."""
    out = Located(None, dict(base.values), dict(base.keys))

    def drop(prefix: Path_) -> None:
        for table in (out.values, out.keys):
            for p in [p for p in table if p[: len(prefix)] == prefix and len(p) > len(prefix)]:
                del table[p]

    def walk(b: Any, c: Any, path: Path_) -> Any:
        if isinstance(b, dict) and isinstance(c, dict):
            merged = dict(b)
            for k, v in c.items():
                sub = (*path, k)
                if k in b and isinstance(b[k], dict) and isinstance(v, dict):
                    merged[k] = walk(b[k], v, sub)
                    out.keys[sub] = child.keys.get(sub, out.keys.get(sub))
                    out.values[sub] = child.values.get(sub, out.values.get(sub))
                else:
                    drop(sub)
                    merged[k] = v
                    for table, src in ((out.values, child.values), (out.keys, child.keys)):
                        for p, place in src.items():
                            if p[: len(sub)] == sub:
                                table[p] = place
            return merged
        return c

    out.data = walk(base.data, child.data, ())
    out.values[()] = child.values.get((), out.values.get(()))
    return out


def dump(data: Any) -> str:
    """Plain data as block-style YAML text."""
    import io

    yaml = YAML(typ="rt")
    yaml.default_flow_style = None
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 120
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()

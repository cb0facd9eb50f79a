"""Warnings on valid protocols: things that load but may not mean what the author meant.

Today one rule: a time written as a plain number (``settle: 1``) is read as seconds,
which is rarely what a lab means by ``1``. Warnings never change whether a file is
valid; ``aeqlab validate`` prints them as ``file:line:col: key: message``.
"""

from __future__ import annotations

from functools import lru_cache

from aeqlab.protocol.problems import Problem
from aeqlab.protocol.yamlio import Located


@lru_cache(maxsize=1)
def _schema() -> dict:
    from aeqlab.protocol.schema import protocol_schema

    return protocol_schema()


def schema_nodes(path: tuple) -> list[dict]:
    """The schema nodes that may describe the value at ``path`` (every branch of a union)."""
    schema = _schema()
    defs = schema.get("$defs", {})

    def deref(s: dict) -> list[dict]:
        if "$ref" in s:
            return deref(defs[s["$ref"].split("/")[-1]])
        out = [s]
        for k in ("anyOf", "oneOf", "allOf"):
            for sub in s.get(k, []):
                out += deref(sub)
        return out

    nodes = deref(schema)
    for part in path:
        nxt: list[dict] = []
        for s in nodes:
            if isinstance(part, int):
                if "items" in s:
                    nxt += deref(s["items"])
                for sub in s.get("prefixItems", []):
                    nxt += deref(sub)
            elif part in s.get("properties", {}):
                nxt += deref(s["properties"][part])
            elif isinstance(s.get("additionalProperties"), dict):
                nxt += deref(s["additionalProperties"])
        nodes = nxt
        if not nodes:
            break
    return nodes


def _key_path(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def unitless_times(located: Located) -> list[Problem]:
    """A warning for every non-zero time written as a bare number (read as seconds)."""
    out = []
    stack = [((), located.data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))
        elif isinstance(value, int | float) and not isinstance(value, bool) and value != 0:
            if any(node.get("x-unit") == "s" for node in schema_nodes(path)):
                place = located.values.get(path)
                if place is not None:
                    out.append(
                        Problem(
                            place.file,
                            place.line,
                            place.col,
                            _key_path(path),
                            f"a number without a unit is read as seconds; write '{value:g} s'",
                        )
                    )
    return sorted(out, key=lambda p: (p.file, p.line, p.col))

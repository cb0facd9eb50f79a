"""Checks on a composed YAML node graph, before anything is constructed from it.

Composing a YAML file shares an aliased node instead of copying it, so the graph is
no bigger than the file. Here it is walked once (each node once, however often it is
aliased) to refuse, cheaply and at their line: alias expansion beyond
:data:`MAX_REPEATED` values (a "billion laughs" file), a recursive alias, tags a
protocol has no use for (``!!binary``, ``!!python/...``, ``!local``), and explicitly
tagged scalars that cannot be what their tag says (``!!bool maybe``).
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_REPEATED = 10_000  # values that aliases may add to a protocol by repeating anchored ones

_CORE = "tag:yaml.org,2002:"
_ALLOWED = {_CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")}
_CHECKED = {_CORE + t: t for t in ("int", "float", "bool", "null", "timestamp")}


def _where(shown: str, node: Node) -> str:
    mark = node.start_mark
    return f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark is not None else f"{shown}:1:1"


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def check_nodes(root: Node, shown: str, constructor: Any = None) -> list[str]:
    """Problems of a composed node graph, one ``file:line:col: message`` line each (empty: none).

    Parameters
    ----------
    root
        The composed document node.
    shown
        The file name used in messages.
    constructor
        The ruamel constructor, to try explicitly tagged scalars one by one.
    """
    size: dict[int, int] = {}  # id → values the node stands for once aliases are expanded
    refs: dict[int, int] = {}  # id → how often the graph points at it
    nodes: dict[int, Node] = {}
    active: set[int] = set()
    problems: list[str] = []
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            size[key] = 1 + sum(size[id(k)] for k in _children(node))
            continue
        refs[key] = refs.get(key, 0) + 1
        if key in size:
            continue
        if key in active:  # an ancestor of itself: it would expand forever
            return [f"{_where(shown, node)}: a recursive alias (an anchor used inside itself; remove the alias)"]
        nodes[key] = node
        active.add(key)
        problems += _tag_problems(node, shown, constructor)
        stack.append((node, True))
        stack.extend((k, False) for k in reversed(_children(node)))
    repeated = size[id(root)] - len(size)
    if repeated > MAX_REPEATED:
        shared = [k for k, n in refs.items() if n > 1]
        worst = nodes[max(shared, key=lambda k: size[k] * (refs[k] - 1))] if shared else root
        problems.insert(
            0,
            f"{_where(shown, worst)}: aliases repeat {repeated} values, more than the {MAX_REPEATED} a protocol may "
            "repeat (write the values out, or use fewer aliases)",
        )
    return problems


def _tag_problems(node: Node, shown: str, constructor: Any) -> list[str]:
    tag = str(node.tag)
    if tag not in _ALLOWED:
        shown_tag = tag.replace(_CORE, "!!")
        return [
            f"{_where(shown, node)}: the tag {shown_tag[:40]} has no use in a protocol "
            "(remove it: values are strings, numbers, booleans, lists and mappings)"
        ]
    if isinstance(node, ScalarNode) and tag in _CHECKED and constructor is not None:
        try:
            constructor.construct_object(node)
        except Exception:  # noqa: BLE001 - each constructor fails its own way (KeyError, ValueError...)
            value = node.value if len(node.value) <= 40 else node.value[:37] + "..."
            kind = _CHECKED[tag]
            return [
                f"{_where(shown, node)}: {value!r} is not a valid {kind} (remove the !!{kind} tag, or fix the value)"
            ]
    return []

"""A sweep's points: the grid or the seeded draw, each point's protocol, validated, and its key.

A point is one protocol (the base with the axes' values written into it, and the
sweep's epochs) and one seed. Its key is the SHA-256 of the resolved protocol (its
canonical JSON, the data path left out), the data's hash (of the loaded split) and the
seed and backend kind: the same point in another sweep, or in a rerun, has the same key.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from aeqlab.datasets import load
from aeqlab.errors import InputError
from aeqlab.protocol import Protocol
from aeqlab.protocol.loader import SCHEMA_LINE
from aeqlab.protocol.yamlio import dump
from aeqlab.runs.store import split_sha256
from aeqlab.sweeps.loader import Sweep, key_path
from aeqlab.sweeps.model import Range

_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


@dataclass
class Point:
    """One point of a sweep: its coordinates on the axes, its seed, its protocol and key."""

    index: int
    coords: dict[str, Any]
    seed: int
    data: dict[str, Any]  # the point's protocol as plain data
    protocol: Protocol | None = None
    key: str = ""
    places: dict[str, Any] = field(default_factory=dict)  # axis -> where its value is written

    @property
    def text(self) -> str:
        """The point's protocol as YAML text (what its run folder keeps)."""
        coords = ", ".join(f"{k} = {shown(v)}" for k, v in self.coords.items())
        return f"{SCHEMA_LINE}\n# a sweep point: {coords}; seed {self.seed}\n" + dump(self.data)


def assignments(axis: str, value: Any) -> list[tuple[str, Any]]:
    """The (field path, value) pairs an axis value sets: one, or a linked axis' several."""
    if isinstance(value, dict):
        return [(k, v) for k, v in value.items() if k != "label"]
    return [(axis, value)]


def shown(value: Any) -> str:
    """An axis value for people: a linked value's label, else the value."""
    if isinstance(value, dict):
        return str(value.get("label", ", ".join(f"{k}={v}" for k, v in value.items())))
    return str(value)


def parse_path(path: str) -> list[str | int]:
    """``simulation.epsilon.weights[0]`` → ``['simulation', 'epsilon', 'weights', 0]``."""
    return [name if name else int(index) for name, index in _TOKEN.findall(path)]


def _lookup(tree: Any, parts: list[str | int]) -> Any:
    for p in parts:
        if isinstance(tree, dict) and isinstance(p, str) and p in tree:
            tree = tree[p]
        elif isinstance(tree, list) and isinstance(p, int) and p < len(tree):
            tree = tree[p]
        else:
            return None
    return tree


def set_path(data: dict, defaults: dict, path: str, value: Any) -> str | None:
    """Write ``value`` at ``path`` into ``data``; a section the file leaves out comes from ``defaults``.

    Returns a problem (for the sweep file's message) or None.
    """
    parts = parse_path(path)
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return f"{key_path(tuple(parts[:i]))} has no item [{part}]"
            child = node[part]
        else:
            if not isinstance(node, dict):
                return f"{key_path(tuple(parts[:i]))} is not a section"
            if part not in node or node[part] is None:
                filled = _lookup(defaults, parts[: i + 1])
                node[part] = copy.deepcopy(filled) if filled is not None else ([] if isinstance(nxt, int) else {})
            child = node[part]
        if isinstance(nxt, int) and not isinstance(child, list):
            if isinstance(child, int | float):  # a scalar that stands for a list ("epsilon: 0.02"): not indexable
                return f"{key_path(tuple(parts[: i + 1]))} is a single value here, not a list"
            return f"{key_path(tuple(parts[: i + 1]))} is not a list"
        node = child
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            return f"{key_path(tuple(parts[:-1]))} has no item [{last}]"
    elif not isinstance(node, dict):
        return f"{key_path(tuple(parts[:-1]))} is not a section"
    node[last] = value
    return None


def _draw(rng: np.random.Generator, axis: list[Any] | Range, where: str) -> Any:
    if isinstance(axis, list):
        return axis[int(rng.integers(len(axis)))]
    ureg = _units()
    try:
        low, high = ureg.Quantity(axis.low), ureg.Quantity(axis.high)
        unit = low.units if hasattr(low, "units") else None
        lo = float(low.magnitude if hasattr(low, "magnitude") else low)
        hi = float(high.to(unit).magnitude if unit is not None and hasattr(high, "to") else high)
    except Exception as exc:  # noqa: BLE001 - pint raises many kinds for bad units
        raise InputError(f"{where}: low and high are not quantities of one dimension ({exc})") from None
    if axis.log:
        if lo <= 0 or hi <= 0:
            raise InputError(f"{where}: a log range needs low and high > 0")
        value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    else:
        value = rng.uniform(lo, hi)
    if axis.integer:
        value = int(round(value))
    if unit is None or str(unit) == "dimensionless":
        return value
    return f"{value:.12g} {unit:~}"


@lru_cache(maxsize=1)
def _units() -> Any:
    import pint

    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


def combos(sweep: Sweep) -> list[dict[str, Any]]:
    """The coordinates of every point (before seeds): the grid, or the seeded draw."""
    spec = sweep.spec
    names = spec.axis_names()
    if spec.random is None:
        return [dict(zip(names, values)) for values in itertools.product(*(spec.axes[n] for n in names))]
    rng = np.random.default_rng(spec.random.seed)
    out = []
    for _ in range(spec.random.samples):
        out.append({n: _draw(rng, spec.axes[n], f"{sweep.place('axes', n)}: axes.{n}") for n in names})
    return out


def _canonical(protocol: Protocol) -> str:
    data = protocol.model_dump(mode="json", by_alias=True)
    data.get("dataset", {}).pop("path", None)  # the data's hash stands for the file wherever it is
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def point_key(protocol: Protocol, data_sha256: str, seed: int, backend: str) -> str:
    """The point's key: SHA-256 of its resolved protocol, its data's hash, its seed and backend kind."""
    h = hashlib.sha256()
    for part in (_canonical(protocol), data_sha256, str(seed), backend):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _absolute_data_path(data: dict, folder: Path) -> None:
    ds = data.get("dataset")
    if isinstance(ds, dict) and isinstance(ds.get("path"), str) and not Path(ds["path"]).is_absolute():
        ds["path"] = str((folder / ds["path"]).resolve())


def _value_place(sweep: Sweep, axis: str, value: Any) -> Any:
    values = sweep.spec.axes[axis]
    if isinstance(values, list) and value in values:
        return sweep.place("axes", axis, values.index(value))
    return sweep.place("axes", axis)


def _axis_of(loc: list, coords: dict[str, Any]) -> str | None:
    """The axis whose path leads to (or into) the failing field; pydantic's union tags are skipped."""
    for axis, value in coords.items():
        for path, _ in assignments(axis, value):
            parts = parse_path(path)
            it = iter(loc)
            if all(any(step == part for step in it) for part in parts):  # parts, in order, along loc
                return axis
            if parts[: len(loc)] == loc:
                return axis
    return None


def _message(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "no such field (check the path against the protocol's schema)"
    return err["msg"].removeprefix("Value error, ")


def _line_order(line: str) -> tuple[int, int]:
    m = re.search(r":(\d+):(\d+): ", line)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def expand(sweep: Sweep) -> list[Point]:
    """Every point of the sweep, each protocol validated; all problems at once.

    Raises
    ------
    InputError
        One line per problem: where the axis value is written, the point, and what is wrong.
    """
    spec = sweep.spec
    defaults = sweep.protocol.model_dump(mode="json", by_alias=True)
    base = copy.deepcopy(sweep.protocol_data)
    _absolute_data_path(base, sweep.protocol_path.parent)
    if spec.epochs is not None:
        base.setdefault("schedule", {})
        base["schedule"]["epochs"] = spec.epochs
    problems: dict[str, None] = {}
    points: list[Point] = []
    data_hashes: dict[str, str] = {}
    for coords in combos(sweep):
        data = copy.deepcopy(base)
        bad = False
        for axis, value in coords.items():
            for path, item in assignments(axis, value):
                problem = set_path(data, defaults, path, item)
                if problem:
                    problems[f"{sweep.place('axes', axis)}: axes.{axis}: {problem}"] = None
                    bad = True
        try:  # also when an axis could not be written: the other axes' problems are reported too
            protocol = Protocol.model_validate(data, context={"base_dir": str(sweep.protocol_path.parent)})
        except ValidationError as exc:
            for err in exc.errors():
                axis = _axis_of(list(err["loc"]), coords)
                place = _value_place(sweep, axis, coords[axis]) if axis else sweep.place("protocol")
                value = (
                    f" = {shown(coords[axis]) if isinstance(coords[axis], dict) else repr(coords[axis])}"
                    if axis
                    else ""
                )
                what = f"axes.{axis}{value}" if axis else "protocol"
                problems[f"{place}: {what}: {key_path(tuple(err['loc']))}: {_message(err)}"] = None
            continue
        if bad:
            continue
        ds_key = json.dumps(protocol.dataset.model_dump(mode="json"), sort_keys=True)
        if ds_key not in data_hashes:
            data_hashes[ds_key] = split_sha256(load(protocol.dataset))
        for seed in spec.seeds:
            p = Point(len(points), dict(coords), seed, data, protocol)
            p.key = point_key(protocol, data_hashes[ds_key], seed, spec.backend)
            points.append(p)
    if problems:
        raise InputError("\n".join(sorted(problems, key=_line_order)))
    return points

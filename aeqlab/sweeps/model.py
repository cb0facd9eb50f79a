"""The sweep file: a base protocol, axes over its fields, seeds, a target, where to run.

A grid sweep (no ``random`` section) takes every combination of the axes' value lists;
a random sweep draws ``random.samples`` points, seeded, from ranges (``{low, high,
log}``, with units as in protocols) or lists (a uniform choice). Every point runs once
per seed. The JSON Schema (``protocols/sweeps/aeqlab.sweep.schema.json``) is built from
this model.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

AXIS_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[\d+\])*(\.[A-Za-z_][A-Za-z0-9_]*(\[\d+\])*)*$")
Scalar = float | int | str | bool


def _axis_path(path: str) -> str:
    if not AXIS_PATH.match(path):
        raise ValueError(f"{path!r} is not a field path such as 'method.beta' or 'simulation.epsilon.weights[0]'")
    return path


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """A range a random sweep draws from: numbers, or quantities with units ("1 ms" to "5 ms")."""

    low: float | str = Field(description="the lowest value (a number, or a quantity such as '1 ms')")
    high: float | str = Field(description="the highest value, in a unit of the same dimension as low")
    log: bool = Field(False, description="draw uniformly in log space (low and high > 0)")
    integer: bool = Field(False, description="round each drawn value to an integer")


class Random(_Strict):
    """A seeded random sweep."""

    samples: int = Field(gt=0, le=100_000, description="how many points to draw (each runs once per seed)")
    seed: int = Field(0, ge=0, description="the seed of the draw (the same seed draws the same points)")


class Target(_Strict):
    """What 'samples to target' counts against: the first evaluation at or above the value."""

    metric: Literal["test_accuracy"] = Field(
        "test_accuracy", description="the evaluated metric (R² for a regression's protocol)"
    )
    value: float = Field(le=1.0, allow_inf_nan=False, description="the target value of the metric")


class SweepFile(_Strict):
    """A sweep file (YAML)."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80, description="the sweep's name (its folder's name)"
    )
    description: str | None = Field(None, description="what the sweep asks")
    protocol: str = Field(min_length=1, description="the base protocol file, relative to the sweep file")
    backend: Literal["sim", "emulate", "bench"] = Field(
        "sim",
        description="sim and emulate points run in parallel on the cluster; bench points one at a time, "
        "in order, in the process attached to the bench",
    )
    epochs: int | None = Field(None, gt=0, description="epochs per point (default: the protocol's schedule.epochs)")
    seeds: list[int] = Field(
        default_factory=lambda: [0], min_length=1, description="every point runs once per seed (training order)"
    )
    axes: dict[Annotated[str, AfterValidator(_axis_path)], list[Any] | Range] = Field(
        min_length=1,
        description="protocol field (dotted path, list indices such as simulation.epsilon.weights[0]) -> "
        "values (a list; in a random sweep also a range {low, high, log}); or a name -> a list of mappings "
        "{field: value, ..., label: text} (a linked axis: each value sets several fields)",
    )
    random: Random | None = Field(None, description="draw points at random instead of taking the grid")
    target: Target | None = Field(None, description="the target of 'samples to target'")
    scheduler: str | None = Field(
        None, description="a Dask scheduler address (tcp://host:port); default: a LocalCluster on this machine"
    )
    workers: int | None = Field(None, gt=0, description="LocalCluster worker processes (default: the CPU count)")
    out: str | None = Field(None, description="the sweep's folder (default: runs/sweeps/<name>, from the cwd)")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("each seed once")
        if any(s < 0 or s > 2**32 - 1 for s in v):
            raise ValueError("seeds are integers from 0 to 2**32 - 1")
        return v

    @field_validator("axes")
    @classmethod
    def _axes(cls, v: dict[str, Any]) -> dict[str, Any]:
        for path, values in v.items():
            if not AXIS_PATH.match(path):
                raise ValueError(
                    f"{path!r} is not a field path such as 'method.beta' or 'simulation.epsilon.weights[0]'"
                )
            if isinstance(values, list):
                if not values:
                    raise ValueError(f"{path}: give at least one value")
                linked = [x for x in values if isinstance(x, dict)]
                if linked and len(linked) != len(values):
                    raise ValueError(f"{path}: a linked axis has a mapping of fields for every value")
                for x in linked:
                    for key, item in x.items():
                        if key != "label":
                            _axis_path(key)
                        if isinstance(item, dict | list):
                            raise ValueError(f"{path}: {key}: each value is a number, a string or a boolean")
                if any(isinstance(x, list) for x in values):
                    raise ValueError(f"{path}: each value is a number, a string, a boolean or a mapping of fields")
        return v

    @model_validator(mode="after")
    def _ranges_need_random(self) -> SweepFile:
        ranged = [p for p, v in self.axes.items() if isinstance(v, Range)]
        if ranged and self.random is None:
            raise ValueError(
                f"axis {ranged[0]!r} is a range, which only a random sweep draws from "
                "(add 'random: {samples: N}' or give a list of values)"
            )
        return self

    def axis_names(self) -> list[str]:
        return list(self.axes)


def sweep_schema() -> dict[str, Any]:
    """The JSON Schema of a sweep file (draft 2020-12)."""
    schema = SweepFile.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "aeqlab.sweep.schema.json", **schema}


def schema_text() -> str:
    """The schema as the text checked in at ``protocols/sweeps/aeqlab.sweep.schema.json``."""
    return json.dumps(sweep_schema(), indent=2, ensure_ascii=False) + "\n"

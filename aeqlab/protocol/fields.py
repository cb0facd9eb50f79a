"""The base of every protocol section and the field helpers and number types they share."""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from aeqlab.protocol.units import AMPERE, VOLT, quantity


def _f(default: Any = ..., description: str = "", unit: str | None = None, **kw: Any) -> Any:
    """A field with a description and, for numbers, its unit in the JSON Schema (``x-unit``)."""
    extra = {"x-unit": unit} if unit else None
    return Field(default, description=description, json_schema_extra=extra, **kw)


def _problems(title: str, problems: list[tuple[tuple, str]]) -> None:
    """Raise every cross-field problem at once, each at its own key path."""
    if problems:
        raise ValidationError.from_exception_data(
            title,
            [
                InitErrorDetails(type=PydanticCustomError("cross_field", msg), loc=loc, input=None)
                for loc, msg in problems
            ],
        )


def _admits_bool(annotation: Any) -> bool:
    """Whether a field of this type may hold true/false somewhere (else a boolean is refused, not read as 1/0)."""
    if annotation is bool or annotation is Any:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel | dict)  # a section or a free mapping checks its own values
    origin = typing.get_origin(annotation)
    if origin is dict or origin is typing.Literal:
        return True
    args = typing.get_args(annotation)
    if origin is Annotated:
        args = args[:1]
    return any(_admits_bool(a) for a in args if a is not types.NoneType and a is not Ellipsis)


def _holds_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    return isinstance(value, list | tuple) and any(isinstance(v, bool) for v in value)


class Strict(BaseModel):
    """Base of every section: unknown keys are refused, values cannot change, booleans are not numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_numbers(cls, data: Any) -> Any:
        # pydantic reads true as 1 for int and float fields: 'tolerance: true' would train with 1.0, silently
        if isinstance(data, dict):
            numeric = _numeric_keys(cls)
            bad = [k for k, v in data.items() if k in numeric and _holds_bool(v)]
            _problems(cls.__name__, [((k,), "true/false is a boolean, not a number (write a number)") for k in bad])
        return data


@cache
def _numeric_keys(cls: type[BaseModel]) -> frozenset[str]:
    """Names and aliases of the fields of ``cls`` that hold numbers and never a boolean."""
    out = set()
    for name, info in cls.model_fields.items():
        if not _admits_bool(info.annotation):
            out.add(name)
            if info.alias:
                out.add(info.alias)
    return frozenset(out)


# fixed caps on sizes, checked at validate: what a bench of this software can sensibly have
MAX_CHANNELS = 65_536  # channels of one instrument (or one range such as dac/ao0:9609): twins of digits need 9,610
MAX_LAYER = 4096  # units in one layer of the twin
MAX_PARAMS = 10_000_000  # trainable parameters of the twin (each is a knob and a readback: 80 MB of float64)
MAX_DATA_BYTES = 256 << 20  # a data file (CSV or NPZ)
MAX_ROWS = 1_000_000  # examples in a CSV data file (and rows of an NPZ's arrays)
MAX_NPZ_BYTES = 4 * MAX_DATA_BYTES  # an NPZ's arrays expanded (read from their headers before loading)

Finite = Annotated[float, Field(allow_inf_nan=False)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # what every random generator (numpy, scikit-learn) accepts
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Volt = quantity(VOLT, "a voltage")
Amp = quantity(AMPERE, "a current")

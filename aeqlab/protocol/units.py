"""Physical quantities in protocol files: ``5 ms``, ``2.5 V``, ``1 uA``, ``10 kohm``.

A quantity field accepts a plain number (already SI) or a string with a unit, parsed
by pint and normalised to an SI float after a dimension check. A current where a
voltage belongs is an error that names both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

__all__ = ["Kind", "KINDS", "parse_quantity", "quantity", "VOLT", "AMPERE", "SECOND", "OHM", "VOLT_PER_SECOND"]


@dataclass(frozen=True)
class Kind:
    """A physical dimension a field accepts.

    Parameters
    ----------
    name
        What a user calls it ("voltage").
    unit
        Its SI unit symbol ("V"), in which the field's value is stored.
    """

    name: str
    unit: str


VOLT = Kind("voltage", "V")
AMPERE = Kind("current", "A")
SECOND = Kind("time", "s")
OHM = Kind("resistance", "ohm")
HERTZ = Kind("frequency", "Hz")
VOLT_PER_SECOND = Kind("voltage rate", "V/s")
AMPERE_PER_SECOND = Kind("current rate", "A/s")
KINDS = (VOLT, AMPERE, SECOND, OHM, HERTZ, VOLT_PER_SECOND, AMPERE_PER_SECOND)


@lru_cache(maxsize=1)
def _registry() -> Any:
    import pint

    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


def _kind_of(q: Any) -> str:
    """A readable name of a pint quantity's dimension."""
    ureg = _registry()
    for kind in KINDS:
        if q.dimensionality == ureg.Quantity(1, kind.unit).dimensionality:
            return f"a {kind.name} ({kind.unit})"
    if q.dimensionless:
        return "a plain number"
    dims = " · ".join(f"{k.strip('[]')}^{v:g}" if v != 1 else k.strip("[]") for k, v in q.dimensionality.items())
    return f"a quantity of dimension {dims}"


def parse_quantity(value: Any, kind: Kind | tuple[Kind, ...]) -> float:
    """A number (SI) or a string with a unit → an SI float of ``kind`` (or of one of several kinds).

    Raises
    ------
    ValueError
        For a wrong dimension, an unknown unit, or a value that is not finite.
    """
    if isinstance(kind, tuple):
        for k in kind[:-1]:
            try:
                return parse_quantity(value, k)
            except ValueError:
                pass
        try:
            return parse_quantity(value, kind[-1])
        except ValueError:
            names = " or ".join(f"a {k.name} ({k.unit})" for k in kind)
            raise ValueError(f"{value!r} is not {names}") from None
    if isinstance(value, bool):
        raise ValueError(f"expected a {kind.name} such as '2.5 {kind.unit}', got {value!r}")
    if isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            q = _registry().Quantity(text)
        except Exception:  # noqa: BLE001 - pint raises many types for unparsable text
            raise ValueError(f"{value!r} is not a {kind.name} such as '2.5 {kind.unit}'") from None
        if not hasattr(q, "dimensionality"):  # a bare number in a string
            out = float(q)
        elif q.unitless:  # a number written as a string: SI, like a plain number
            out = float(q.magnitude)
        else:
            target = _registry().Quantity(1, kind.unit)
            if q.dimensionality != target.dimensionality:
                raise ValueError(f"{value!r} is {_kind_of(q)}, but this field is a {kind.name} ({kind.unit})")
            out = float(q.to(kind.unit).magnitude)
    else:
        raise ValueError(f"expected a {kind.name} such as '2.5 {kind.unit}', got {type(value).__name__}")
    if not math.isfinite(out):
        raise ValueError(f"{value!r} is not a finite {kind.name}")
    return out


_PATTERN = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*[A-Za-zµΩ/*^0-9 ]*$"


def quantity(kind: Kind | tuple[Kind, ...], description: str, optional: bool = False, **constraints: Any) -> Any:
    """An ``Annotated`` float field of ``kind``: numbers (SI) or strings with units.

    Parameters
    ----------
    kind
        The dimension the field accepts and the SI unit it is stored in.
    description
        What the field means (the unit is added to the schema).
    optional
        Also accept ``null`` (None).
    **constraints
        pydantic ``Field`` constraints on the SI value (``gt``, ``ge``, ``le``...).
    """
    unit = " or ".join(k.unit for k in kind) if isinstance(kind, tuple) else kind.unit
    first = kind[0] if isinstance(kind, tuple) else kind
    schema: dict[str, Any] = {
        "anyOf": [
            {"type": "number"},
            {"type": "string", "pattern": _PATTERN, "examples": [f"1 {first.unit}"]},
        ],
        "description": f"{description} [{unit}; a number in SI, or a string with a unit such as '1 m{first.unit}']",
        "x-unit": unit,
    }
    for key, js in (("gt", "exclusiveMinimum"), ("ge", "minimum"), ("lt", "exclusiveMaximum"), ("le", "maximum")):
        if key in constraints:
            schema["anyOf"][0][js] = constraints[key]
    if optional:
        schema["anyOf"].append({"type": "null"})
    inner = Annotated[float, Field(allow_inf_nan=False, **constraints)]
    return Annotated[
        inner | None if optional else inner,
        BeforeValidator(lambda v: None if optional and v is None else parse_quantity(v, kind)),
        Field(description=description),
        WithJsonSchema(schema),
    ]

"""The base of every protocol section and the field helpers and number types they share."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
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


class Strict(BaseModel):
    """Base of every section: unknown keys are refused, values cannot change."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Finite = Annotated[float, Field(allow_inf_nan=False)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # what every random generator (numpy, scikit-learn) accepts
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Volt = quantity(VOLT, "a voltage")
Amp = quantity(AMPERE, "a current")

"""Driver registry: protocol driver names → driver classes.

Our own drivers are listed here; third-party drivers join through the entry-point
group ``aeqlab.drivers`` (``name = "package.module:Class"``). A driver class may
declare its driver-specific protocol options as a pydantic model in the class
attribute ``Options``; the protocol schema validates ``instruments.<name>.options``
with it (:func:`options_model`), and its hardware's own ranges as a
:class:`~drivers.hardware.HardwareRange` in ``hardware`` (:func:`hardware_range`).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from pydantic import BaseModel

from drivers.errors import InputError
from drivers.hardware import HardwareRange

GROUP = "aeqlab.drivers"

BUILTIN: dict[str, str] = {
    "keithley2450": "drivers.keithley2450:Keithley2450",
    "keithley2400": "drivers.keithley2400:Keithley2400",
    "keysight_b2900": "drivers.keysight_b2900:KeysightB2900",
    "keysight_344xx": "drivers.keysight_344xx:Keysight344xx",
    "qdac2": "drivers.qdac2:QDac2",
    "serial_board": "drivers.serial_board:SerialBoard",
    "nidaq_ao": "drivers.nidaq:NidaqAnalogOutput",
    "nidaq_ai": "drivers.nidaq:NidaqAnalogInput",
}


def _targets() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def names() -> list[str]:
    """Every driver name a protocol may use (besides ``sim``), sorted."""
    return sorted(_targets())


def get(name: str) -> type:
    """The driver class registered as ``name``.

    Raises
    ------
    InputError
        For an unknown name, or a registered class that cannot be imported.
    """
    target = _targets().get(name)
    if target is None:
        raise InputError(
            f"unknown driver {name!r}",
            where="instruments.<name>.driver",
            hint=f"use 'sim' or one of {', '.join(names())}",
        )
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(
            f"driver {name!r} ({target}) cannot be loaded: {exc}",
            where="instruments.<name>.driver",
            hint="check that its package is installed",
        ) from None


def options_model(name: str) -> type[BaseModel] | None:
    """The pydantic model of ``instruments.<name>.options`` for a driver, or None.

    ``sim`` and drivers without options give None (then ``options`` must be empty).
    """
    if name == "sim":
        return None
    model = getattr(get(name), "Options", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model
    return None


def hardware_range(name: str) -> HardwareRange | None:
    """What the hardware of driver ``name`` can source or measure (from its manual), or None.

    None for ``sim`` and for drivers whose range depends on the exact device (NI-DAQ:
    checked at connect against what the device reports). The protocol's validation
    compares ``voltage_range``/``current_range`` with it.
    """
    if name == "sim":
        return None
    found = getattr(get(name), "hardware", None)
    return found if isinstance(found, HardwareRange) else None

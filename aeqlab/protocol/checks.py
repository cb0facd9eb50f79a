"""Safety checks that span sections, provable from the protocol alone (before any instrument opens).

Each returns ``(key path, message)`` pairs that :class:`~aeqlab.protocol.document.Protocol`
reports at their lines:

- an instrument ``ramp.rate`` faster than ``safety.voltage_ramp_rate`` / ``current_ramp_rate``
  for what the instrument sources;
- source-role limits that exclude 0, the value the ``zero`` safe state ramps to (allowed with
  ``safety.safe_state: hold``, which keeps voltages and turns currents off without a level change);
- instrument ranges beyond the hardware of the driver's model family, when the drivers'
  registry knows it (``drivers.registry.hardware_range``).
"""

from __future__ import annotations

from typing import Any

from aeqlab.protocol.instruments import InstrumentConfig
from aeqlab.protocol.roles import SOURCE_ROLES, Roles
from aeqlab.protocol.safety import Safety

Problems = list[tuple[tuple, str]]


def _sourced(roles: Roles) -> dict[str, set[str]]:
    """Instrument name → the units it sources ("V" for inputs and knobs, "A" for nudges)."""
    out: dict[str, set[str]] = {}
    for name in SOURCE_ROLES:
        unit = "A" if name == "nudges" else "V"
        for ref in getattr(roles, name).refs():
            out.setdefault(ref.instrument, set()).add(unit)
    return out


def ramp_rates(instruments: dict[str, InstrumentConfig], roles: Roles, safety: Safety) -> Problems:
    """Instrument ramps faster than the safety maximum for what the instrument sources."""
    out: Problems = []
    maxima = {
        "V": ("voltage_ramp_rate", safety.voltage_ramp_rate),
        "A": ("current_ramp_rate", safety.current_ramp_rate),
    }
    for inst, units in _sourced(roles).items():
        cfg = instruments.get(inst)
        if cfg is None or cfg.ramp is None or cfg.ramp.rate is None:
            continue
        for unit in sorted(units):
            key, limit = maxima[unit]
            if limit is not None and cfg.ramp.rate > limit:
                out.append(
                    (
                        ("instruments", inst, "ramp", "rate"),
                        f"{cfg.ramp.rate:g} {unit}/s is faster than safety.{key} = {limit:g} {unit}/s "
                        f"(lower the ramp rate to at most {limit:g} {unit}/s, or leave it out)",
                    )
                )
    return out


def zero_in_limits(roles: Roles, safety: Safety) -> Problems:
    """Source limits that exclude 0, refused unless the safe state holds instead of zeroing."""
    if safety.safe_state == "hold":
        return []
    out: Problems = []
    for name in SOURCE_ROLES:
        lim = getattr(roles, name).limits
        if lim is not None and not lim.low <= 0 <= lim.high:
            unit = "A" if name == "nudges" else "V"
            out.append(
                (
                    ("roles", name, "limits"),
                    f"[{lim.low:g}, {lim.high:g}] {unit} excludes 0 {unit}, the level the safe state 'zero' goes to "
                    "(include 0 in the limits, or set safety.safe_state: hold, which keeps the levels)",
                )
            )
    return out


def _hardware_range(driver: str) -> Any:
    """What the drivers' registry knows of the driver's hardware, or None (no registry, or not yet known)."""
    try:
        from drivers import registry
    except ImportError:
        return None
    lookup = getattr(registry, "hardware_range", None)  # added by the drivers; absent in older trees
    if lookup is None:
        return None
    try:
        return lookup(driver)
    except Exception:  # noqa: BLE001 - a driver whose package is missing describes no hardware here
        return None


def hardware_ranges(instruments: dict[str, InstrumentConfig]) -> Problems:
    """Instrument ``voltage_range``/``current_range`` beyond the hardware of the driver's model family."""
    out: Problems = []
    for inst, cfg in instruments.items():
        if cfg.driver == "sim":
            continue
        hw = _hardware_range(cfg.driver)
        if hw is None:
            continue
        for key, unit, span in (("voltage_range", "V", hw.voltage), ("current_range", "A", hw.current)):
            if span is None:
                continue
            lo, hi = getattr(cfg, key)
            if lo < span[0] or hi > span[1]:
                told = "" if key in cfg.model_fields_set else " (the default)"
                out.append(
                    (
                        ("instruments", inst, key),
                        f"[{lo:g}, {hi:g}] {unit}{told} is beyond what a {cfg.driver} can do: [{span[0]:g}, "
                        f"{span[1]:g}] {unit}, from {hw.source} (set {key} within it)",
                    )
                )
    return out

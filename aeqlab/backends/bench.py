"""Composition root of the ``bench`` backend: protocol → real driver instances → bench.

Imports :mod:`drivers` only, never :mod:`sim_backends` (an import-linter contract).
"""

from __future__ import annotations

import math
from typing import Any

from aeqlab.engine.backend import Backend
from aeqlab.engine.bench import Bench
from aeqlab.errors import AeqlabError, InputError
from aeqlab.protocol import Protocol
from aeqlab.signals import shielded
from drivers import registry
from drivers.base import DriverSettings, Ramp
from drivers.capabilities import WallClock

ROLE_NAMES = ("inputs", "outputs", "knobs", "params", "nudges")


# ------------------------------------------------------------------ settings
def driver_settings(name: str, cfg: Any, resource: str | None = None) -> DriverSettings:
    """Translate ``instruments.<name>`` (present or future protocol model) into driver settings."""
    ramp = getattr(cfg, "ramp", None)
    if isinstance(ramp, dict):
        ramp = Ramp(float(ramp.get("step", math.inf)), float(ramp.get("rate", math.inf)))
    elif ramp is not None and not isinstance(ramp, Ramp):
        step = getattr(ramp, "step", None)
        rate = getattr(ramp, "rate", None)
        ramp = Ramp(float(step) if step else math.inf, float(rate) if rate else math.inf)
    options = getattr(cfg, "options", None) or {}
    if hasattr(options, "model_dump"):
        options = options.model_dump()
    options = dict(options)
    nplc = getattr(cfg, "nplc", None)  # a protocol-level setting, for the drivers that take one
    if nplc is not None and "nplc" not in options:
        model = registry.options_model(cfg.driver)
        if model is not None and "nplc" in model.model_fields:
            options["nplc"] = nplc
    return DriverSettings(
        resource=resource if resource is not None else cfg.resource,
        channels=cfg.channels,
        voltage_range=tuple(cfg.voltage_range),
        current_range=tuple(cfg.current_range),
        timeout=float(getattr(cfg, "timeout", None) or 2.0),
        baud=int(getattr(cfg, "baud", None) or 115200),
        read_termination=getattr(cfg, "read_termination", None) or "\n",
        write_termination=getattr(cfg, "write_termination", None) or "\n",
        ramp=ramp or Ramp(),
        options=dict(options),
    )


def open_instruments(protocol: Protocol, resources: dict[str, str] | None = None) -> dict[str, Any]:
    """Open every instrument of the protocol with its registered driver (nothing is changed)."""
    opened: dict[str, Any] = {}
    try:
        for name, cfg in protocol.instruments.items():
            opened[name] = open_instrument(name, cfg, (resources or {}).get(name))
        return opened
    except BaseException:
        with shielded():  # nothing was driven: the links are closed, uncut by a second Ctrl-C
            for obj in opened.values():
                obj.close()
        raise


def open_instrument(name: str, cfg: Any, resource: str | None = None) -> Any:
    """Open one instrument (``instruments.<name>``) with its registered driver; nothing is changed."""
    if cfg.driver == "sim":
        raise InputError(
            f"instrument {name!r} is 'sim', which has no real driver",
            where=f"instruments.{name}.driver",
            hint=f"name a driver ({', '.join(registry.names())}) or run with --sim",
        )
    return registry.get(cfg.driver).open(name, driver_settings(name, cfg, resource))


def probe_instruments(protocol: Protocol, resources: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Open, describe and close each instrument on its own: one failure does not hide the others.

    Each entry is :func:`describe`'s with ``ok: True``, or ``{"name", "ok": False, "error"}``
    with the reason in one line. Nothing is written to any output; each link is closed
    before the next instrument is opened.
    """
    out: list[dict[str, Any]] = []
    for name, cfg in protocol.instruments.items():
        try:
            obj = open_instrument(name, cfg, (resources or {}).get(name))
            try:
                info = describe(name, obj)
            finally:
                obj.close()
        except AeqlabError as exc:
            out.append({"name": name, "ok": False, "error": exc.one_line()})
        except Exception as exc:  # noqa: BLE001 - a probe reports every instrument, whatever stopped one
            reason = " ".join(str(exc).split())[:200]
            out.append({"name": name, "ok": False, "error": f"{name}: {exc.__class__.__name__}: {reason}"})
        else:
            out.append({"ok": True, **info})
    return out


def open_bench(protocol: Protocol) -> Backend:
    """The real instruments the protocol names, behind a bench on the wall clock."""
    instruments = open_instruments(protocol)
    try:
        bench = Bench(protocol, instruments, WallClock())
    except BaseException:
        with shielded():
            for obj in instruments.values():
                obj.close()
        raise
    return Backend("bench", bench, diagnostics=lambda: _link_stats(instruments))


def _link_stats(instruments: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, obj in instruments.items():
        link = getattr(obj, "link", None)
        if link is not None:
            out[f"{name}_exchanges"] = link.round_trips
    return {"instrument_exchanges": out}


def describe(name: str, obj: Any) -> dict[str, Any]:
    """Identity, channels, limits and present state of an open instrument (changes nothing)."""
    info: dict[str, Any] = {"name": name, "identity": obj.identify(), "channels": getattr(obj, "n_channels", None)}
    limits = {}
    for attr in ("output_limits", "current_limits", "input_limits"):
        table = getattr(obj, attr, None)
        if table is not None:
            limits[attr] = f"[{table.low.min():g}, {table.high.max():g}] {table.unit}"
    info["limits"] = limits
    state = getattr(obj, "state", None)
    if callable(state):
        try:
            info["state"] = state()
        except AeqlabError as exc:
            info["state"] = f"unavailable: {exc}"
    return info

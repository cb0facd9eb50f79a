"""Names and units of a run's parameters and channels, from the protocol stored in its journal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml


@dataclass
class Naming:
    """How a run's parameters are named and which SI unit each role has.

    ``params`` names each θ index (``W1[i,j]``, ``b2[k]``, ``edge[7]``); ``knob_channels``
    names each knob channel (``board/ao17``); ``calibration`` maps a role to (scale, offset, unit)
    when the protocol declares one, else the role is absent (plot in model units).
    """

    params: list[str] = field(default_factory=list)
    knob_channels: list[str] = field(default_factory=list)
    calibration: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    limits: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    task: str = "classification"
    homeostasis: dict[str, float] = field(default_factory=dict)


def _channels(spec: Any) -> list[str]:
    refs = spec if isinstance(spec, list) else [spec]
    out = []
    for ref in refs:
        inst, _, rest = str(ref).partition("/")
        prefix = rest.rstrip("0123456789:")
        span = rest[len(prefix) :]
        a, _, b = span.partition(":")
        if not a.isdigit():
            out.append(str(ref))
            continue
        out += [f"{inst}/{prefix}{k}" for k in range(int(a), int(b or a) + 1)]
    return out


def _quantity(v: Any) -> float:
    from aeqlab.protocol.units import KINDS, parse_quantity

    return float(v) if isinstance(v, int | float) else float(parse_quantity(str(v), KINDS))


def _hopfield_names(layers: list[int]) -> list[str]:
    names = []
    for l, (a, b) in enumerate(zip(layers[:-1], layers[1:]), start=1):
        names += [f"W{l}[{i},{j}]" for i in range(a) for j in range(b)]
    for l, n in enumerate(layers[1:], start=1):
        names += [f"b{l}[{k}]" for k in range(n)]
    return names


def naming(protocol_text: str, n_params: int) -> Naming:
    """Names and units from a protocol's YAML text; tolerant of anything missing (falls back to θ[i])."""
    try:
        doc = yaml.safe_load(protocol_text) or {}
    except yaml.YAMLError:
        doc = {}
    out = Naming()
    sim = doc.get("simulation") or {}
    if sim.get("model", "hopfield") == "hopfield" and sim.get("layers"):
        out.params = _hopfield_names(list(sim["layers"]))
    elif sim.get("model") == "spring":
        out.params = [f"rest[{k}]" for k in range(n_params)]
    if len(out.params) != n_params:
        out.params = [f"θ[{k}]" for k in range(n_params)]
    roles = doc.get("roles") or {}
    for role, spec in roles.items():
        if not isinstance(spec, dict):
            continue
        unit = "A" if role == "nudges" else "V"
        cal = spec.get("calibration")
        try:
            if cal:
                out.calibration[role] = (_quantity(cal.get("scale", 1.0)), _quantity(cal.get("offset", 0.0)), unit)
            lim = spec.get("limits")
            if lim:
                out.limits[role] = (_quantity(lim["low"]), _quantity(lim["high"]), unit)
        except (ValueError, KeyError, TypeError):
            pass
    if "knobs" in roles and isinstance(roles["knobs"], dict):
        out.knob_channels = _channels(roles["knobs"].get("channels", []))
    out.task = ((doc.get("dataset") or {}).get("task")) or "classification"
    ho = ((doc.get("method") or {}).get("homeostasis")) or {}
    out.homeostasis = {
        "tolerance": _quantity(ho.get("tolerance", 1e-6)),
        "max_iterations": int(ho.get("max_iterations", 100)),
    }
    return out


def param_label(n: Naming, index: int) -> str:
    """``W1[0,3] · dac/ao3`` when the knob channel is known, else the parameter's name."""
    name = n.params[index] if index < len(n.params) else f"θ[{index}]"
    if index < len(n.knob_channels):
        return f"{name} · {n.knob_channels[index]}"
    return name

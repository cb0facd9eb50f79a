"""A checkpoint as plain data (JSON-able scalars and named arrays) and back, exactly."""

from __future__ import annotations

from typing import Any

import numpy as np

from aeqlab.engine.feedback import SecantGains
from aeqlab.engine.methods.phases import FeedbackMemory
from aeqlab.engine.methods.settling import SettleMemory
from aeqlab.engine.records import Checkpoint, EpochTotals
from aeqlab.engine.state import EngineState


def to_parts(cp: Checkpoint) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(scalars, arrays) of a checkpoint; the knob bounds are left out (constant during a run)."""
    st = cp.state
    mem = st.memory
    scalars: dict[str, Any] = {
        "epoch": cp.epoch,
        "done": cp.done,
        "samples_done": cp.samples_done,
        "beta": cp.beta,
        "rng_state": cp.rng_state,
        "totals": dict(cp.totals.__dict__),
        "gains_min_step": mem.knob_gains.min_step,
        "gains_bounds": list(mem.knob_gains.bounds),
        "dither_seed": mem.dither_seed,
        "dither_draws": mem.dither_draws,
    }
    # the adaptive settle's observations; its last readings go with the arrays
    settle = SettleMemory(window=mem.settle.window, seen=mem.settle.seen).to_state()
    arrays = {
        "targets": st.targets,
        "knobs": st.knobs,
        "knob_gains": mem.knob_gains.gain,
        "susceptibility": mem.susceptibility,
    }
    for name in ("theta", "outputs"):
        settle.pop(name)
        if getattr(mem.settle, name) is not None:
            arrays[f"settle_{name}"] = getattr(mem.settle, name)
    scalars["settle"] = settle
    return scalars, arrays


def from_parts(s: dict[str, Any], a: dict[str, np.ndarray], low: np.ndarray, high: np.ndarray) -> Checkpoint:
    """The checkpoint :func:`to_parts` took apart, with the run's knob bounds."""
    targets, knobs, gains, chi = a["targets"], a["knobs"], a["knob_gains"], a["susceptibility"]
    sg = SecantGains(gains.size, 1.0, min_step=s["gains_min_step"], bounds=tuple(s["gains_bounds"]))
    sg.gain = gains.copy()
    memory = FeedbackMemory(
        knob_gains=sg,
        susceptibility=chi.copy(),
        knob_low=low.copy(),
        knob_high=high.copy(),
        dither_seed=int(s.get("dither_seed", 0)),  # journals written before the dither have neither
        dither_draws=int(s.get("dither_draws", 0)),
    )
    if "settle" in s:  # journals written before the adaptive settle have none
        settle = dict(s["settle"])
        for name in ("theta", "outputs"):
            settle[name] = a.get(f"settle_{name}")
        memory.settle = SettleMemory.from_state(settle)
    state = EngineState(targets=targets.copy(), knobs=knobs.copy(), memory=memory)
    return Checkpoint(
        epoch=s["epoch"],
        done=s["done"],
        samples_done=s["samples_done"],
        beta=s["beta"],
        rng_state=s["rng_state"],
        totals=EpochTotals(**s["totals"]),
        state=state,
    )

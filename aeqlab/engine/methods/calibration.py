"""Calibration of a bench through its instruments: what the engine may measure, never assume.

For every knob, the gain and offset of its knob → parameter response; for every read
channel, its noise floor; for the system, its settling time constant. Written as plans
(see :mod:`aeqlab.engine.plan`), so the same procedure runs on a bench or on a twin.

Procedure (inputs at zero and nudges off, so that the parameters barely feel the states):

1. settling: step every knob by ``step`` and read the parameters at growing delays; the
   channel that moved most, its approach to its final value fitted as an exponential, gives τ;
2. gain and offset: read θ (averaged) at two knob levels u ± gain_step/2, each after 10 τ
   (a small step: the parameters' own response to the states grows with its square);
   gain = Δθ/Δu, offset = u − θ/gain (the knob value that gives θ = 0), refined by reading θ
   at that offset;
3. noise: read every channel ``repeats`` times with nothing changing; σ per channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aeqlab.engine.plan import Plan, Read, Set, Settle


@dataclass
class Calibration:
    """What a calibration measured (model units; seconds)."""

    knob_gain: np.ndarray
    knob_offset: np.ndarray
    params_noise: np.ndarray
    outputs_noise: np.ndarray
    settling_tau: float
    recommended_gain: float
    settle_time: float

    def summary(self) -> dict[str, float]:
        return {
            "knob_gain_min": float(self.knob_gain.min()),
            "knob_gain_median": float(np.median(self.knob_gain)),
            "knob_gain_max": float(self.knob_gain.max()),
            "knob_offset_max_abs": float(np.max(np.abs(self.knob_offset))),
            "params_noise_median": float(np.median(self.params_noise)),
            "outputs_noise_median": float(np.median(self.outputs_noise)),
            "settling_tau_s": self.settling_tau,
            "recommended_settle_s": self.settle_time,
            "recommended_homeostasis_gain": self.recommended_gain,
        }


def _fit_tau(times: np.ndarray, values: np.ndarray) -> float:
    """Time constant of values(t) → final value, from the samples that are still clearly moving."""
    final = values[-1]
    dist = np.abs(values[:-1] - final)
    ok = dist > 0.05 * max(dist[0], 1e-300)  # the first three time constants: well above any noise
    if ok.sum() < 2 or dist[0] == 0:
        return 0.0
    slope, _ = np.polyfit(times[:-1][ok], np.log(dist[ok]), 1)
    return float(-1.0 / slope) if slope < 0 else 0.0


def calibrate(
    knobs: np.ndarray,
    n_inputs: int,
    n_outputs: int,
    *,
    step: float = 0.2,
    gain_step: float = 0.05,
    repeats: int = 100,
    averages: int = 100,
    probe_delays: tuple[float, ...] = tuple(1e-5 * 1.6**k for k in range(30)),
) -> Plan[Calibration]:
    """Measure the bench around the knob setpoints ``knobs`` (model units)."""
    yield Set("inputs", np.zeros(n_inputs))
    yield Set("nudges", np.zeros(n_outputs))
    low = knobs - step / 2
    high = knobs + step / 2
    # 1. settling: step to the low level, wait long, then step up and watch θ move
    yield Set("knobs", low)
    yield Settle(probe_delays[-1])
    yield Read("params")
    yield Set("knobs", high)
    t_prev, times, readings = 0.0, [], []
    for t in probe_delays:
        yield Settle(t - t_prev)
        t_prev = t
        times.append(t)
        readings.append((yield Read("params")))
    readings = np.array(readings)
    moving = np.argmax(np.abs(readings[0] - readings[-1]))
    tau = _fit_tau(np.array(times), readings[:, moving])
    settle = max(10 * tau, 1e-6)
    # 2. gain and offset, from two levels each read (``averages`` times) after settling
    low, high = knobs - gain_step / 2, knobs + gain_step / 2  # small: the states barely move
    levels = []
    for u in (low, high):
        yield Set("knobs", u)
        yield Settle(settle)
        reads = []
        for _ in range(averages):
            reads.append((yield Read("params")))
        levels.append(np.mean(reads, axis=0))
    theta_low, theta_high = levels
    gain = (theta_high - theta_low) / (high - low)
    safe_gain = np.where(gain != 0, gain, 1.0)
    offset = high - theta_high / safe_gain
    # one Newton step from where θ should be zero: the gain's own error hardly matters there
    yield Set("knobs", offset)
    yield Settle(settle)
    reads = []
    for _ in range(averages):
        reads.append((yield Read("params")))
    offset = offset - np.mean(reads, axis=0) / safe_gain
    # 3. noise floor, with nothing changing
    params, outputs = [], []
    for _ in range(repeats):
        yield Settle(settle / 10)
        params.append((yield Read("params")))
        outputs.append((yield Read("outputs")))
    yield Set("knobs", knobs)
    yield Settle(settle)
    median_gain = float(np.median(gain))
    return Calibration(
        knob_gain=gain,
        knob_offset=offset,
        params_noise=np.std(params, axis=0, ddof=1),
        outputs_noise=np.std(outputs, axis=0, ddof=1),
        settling_tau=tau,
        recommended_gain=float(np.clip(1.0 / median_gain, 0.05, 2.0)) if median_gain > 0 else 1.0,
        settle_time=settle,
    )

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
3. noise: read every channel ``repeats`` times with nothing changing; σ per channel;
4. drift: θ averaged over those readings, then again ``averages`` times after ``drift_wait``:
   the change per second per channel, less what the two means' noise can explain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aeqlab.engine.plan import Plan, Read, Set, Settle
from aeqlab.protocol import SettleAdaptive, SettleFixed, SettleUntilStable


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
    params_drift: np.ndarray | None = None  # |dθ/dt| per channel beyond the noise (model units per second)

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
            **(
                {
                    "params_drift_median": float(np.median(self.params_drift)),
                    "params_drift_max": float(np.max(self.params_drift)),
                }
                if self.params_drift is not None and self.params_drift.size
                else {}
            ),
        }


def _fit_tau(times: np.ndarray, values: np.ndarray) -> float:
    """Time constant of values(t) → final value, from the samples that are still clearly moving.

    0 when the first reading is already within the noise of the final value (a response
    faster than the first delay): the noise is the spread of the last five readings, and
    only distances five times above it count as moving.
    """
    final = values[-1]
    dist = np.abs(values[:-1] - final)
    noise = float(np.std(values[-5:], ddof=1)) if values.size >= 5 else 0.0
    ok = dist > max(0.05 * max(dist[0], 1e-300), 5 * noise)  # the first three time constants, above the noise
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
    drift_wait: float = 1.0,
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
    # one Newton step from where θ should be zero (the gain's own error hardly matters there), but
    # never beyond the levels step 1 visited: a θ far from zero would send the knob out of its limits
    probe = np.clip(offset, knobs - step / 2, knobs + step / 2)
    yield Set("knobs", probe)
    yield Settle(settle)
    reads = []
    for _ in range(averages):
        reads.append((yield Read("params")))
    offset = probe - np.mean(reads, axis=0) / safe_gain
    # 3. noise floor, with nothing changing
    params, outputs = [], []
    for _ in range(repeats):
        yield Settle(settle / 10)
        params.append((yield Read("params")))
        outputs.append((yield Read("outputs")))
    params_noise = np.std(params, axis=0, ddof=1)
    # 4. drift: the noise block's mean, and the mean of ``averages`` readings ``drift_wait`` later
    # (the mean's time is the block's middle); a change the two means' noise could make is not drift
    before = np.mean(params, axis=0)
    yield Settle(drift_wait)
    reads = []
    for _ in range(averages):
        reads.append((yield Read("params")))
    elapsed = drift_wait + 0.5 * repeats * settle / 10
    tail = float(np.sqrt(2.0 * np.log(2.0 * max(before.size, 1))))
    explained = tail * params_noise * np.sqrt(1.0 / repeats + 1.0 / averages)
    drift = np.maximum(np.abs(np.mean(reads, axis=0) - before) - explained, 0.0) / elapsed
    yield Set("knobs", knobs)
    yield Settle(settle)
    median_gain = float(np.median(gain))
    return Calibration(
        knob_gain=gain,
        knob_offset=offset,
        params_noise=params_noise,
        outputs_noise=np.std(outputs, axis=0, ddof=1),
        settling_tau=tau,
        recommended_gain=float(np.clip(1.0 / median_gain, 0.05, 2.0)) if median_gain > 0 else 1.0,
        settle_time=settle,
        params_drift=drift,
    )


@dataclass(frozen=True)
class HomeostasisFloor:
    """The smallest max-norm residual a homeostasis loop can reach on a bench, and the settings it implies.

    ``quantization``: half a knob DAC step plus half the dither's width, in model units, at the
    largest knob gain (the knob moves in steps, a dithered one by up to a step more);
    ``noise``: the largest of n averaged readback noises, σ/√averages · √(2 ln 2n) (the
    expected maximum of n Gaussians); ``drift``: how far the fastest-drifting parameter moves
    in one loop iteration (the loop corrects what it read an iteration earlier);
    ``tolerance``: ``margin`` times their sum. A tolerance below the floor is never met:
    every phase runs to its iteration cap.
    """

    quantization: float
    noise: float
    averages: int
    tolerance: float
    drift: float = 0.0

    @property
    def floor(self) -> float:
        return self.quantization + self.noise + self.drift


def homeostasis_floor(
    params_noise: np.ndarray,
    knob_gain: np.ndarray,
    knob_step: float,
    tolerance: float,
    *,
    dither: float = 0.0,
    margin: float = 1.5,
    max_averages: int = 64,
    drift_rate: float = 0.0,
    iteration_time: float = 0.0,
) -> HomeostasisFloor:
    """Averages and tolerance for homeostasis from what calibration measured.

    Averaging pays until the noise term is below the quantization term (more readings cannot
    move a knob by less than a step); without quantization (``knob_step`` 0: unknown or
    negligible) until the noise term is below the present ``tolerance`` over ``margin``.
    The noise is the median channel's (one σ per bench; a channel much noisier than the
    median sets its own floor). ``drift_rate`` (the fastest channel's, model units per
    second) times ``iteration_time`` (one loop iteration's settle, seconds) is the drift
    term. The tolerance is ``margin`` times the floor, and never below the present one when
    there is no quantization.
    """
    n = max(int(np.size(params_noise)), 1)
    sigma = float(np.median(params_noise)) if np.size(params_noise) else 0.0
    # rounding errs by half a step, a dither of width d by d/2 more: the setpoint's error, through the gain
    gain = float(np.max(np.abs(knob_gain), initial=0.0))
    quant = 0.5 * (max(float(knob_step), 0.0) + max(float(dither), 0.0)) * gain
    tail = float(np.sqrt(2.0 * np.log(2.0 * n)))
    goal = quant if quant > 0 else tolerance / margin
    averages = 1
    while averages < max_averages and sigma / np.sqrt(averages) * tail > goal:
        averages *= 2
    noise = sigma / np.sqrt(averages) * tail
    drift = max(float(drift_rate), 0.0) * max(float(iteration_time), 0.0)
    floor = quant + noise + drift
    # with quantization never below half a step at unit gain either: what validate demands of a tolerance
    tol = max(margin * floor, 0.5 * knob_step) if quant > 0 else max(tolerance, margin * (noise + drift))
    return HomeostasisFloor(quant, noise, averages, float(tol), drift)


def iteration_time(policy, recommended_settle: float) -> float:
    """Seconds one homeostasis iteration waits under a settle ``policy`` (the readings' own time not counted).

    A fixed settle waits its time, a settle until stable at least one interval, an adaptive
    one at most its longest wait (the floor errs toward a loop that finishes); without a
    settle policy (a method that has none), the settle calibration recommends.
    """
    if isinstance(policy, SettleFixed):
        return float(policy.time)
    if isinstance(policy, SettleUntilStable):
        return float(policy.interval)
    if isinstance(policy, SettleAdaptive):
        return float(policy.longest)
    return float(recommended_settle)

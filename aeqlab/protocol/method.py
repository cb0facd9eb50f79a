"""How to learn: Aeqprop (variant, nudging, homeostasis, tracking, settle policy) or a baseline."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from aeqlab.protocol.fields import Positive, Seed, Strict, _f, _problems
from aeqlab.protocol.units import SECOND, quantity


class Homeostasis(Strict):
    """The feedback loop that holds every measured parameter at its target."""

    tolerance: Positive = _f(1e-6, "max |θ − θ*| per channel", "model units")
    gain: Positive = _f(1.0, "fraction of the estimated correction applied per step", "1", le=2.0)
    max_iterations: int = _f(100, "cap on feedback steps per phase", "1", gt=0)
    memory: int = _f(5, "steps mixed by Anderson acceleration", "1", ge=0)
    averages: int = _f(
        1, "readings averaged at every step (noisy readbacks: noise falls as 1/√averages)", "1", ge=1, le=1000
    )
    targets: Literal["measured", "incremental"] = _f(
        "measured",
        "the next sample's targets: the measured θ′ (measured), or the previous targets plus the measured "
        "step θ′ − θ_h (incremental: steps smaller than a knob DAC step add up instead of being lost)",
    )
    dither: Annotated[float, Field(ge=0, allow_inf_nan=False)] = _f(
        0.0,
        "width of a uniform dither added to the knob setpoints, drawn afresh for every held phase (one knob "
        "DAC step: the rounded output is right on average); 0: none",
        "model units",
    )


class Tracking(Strict):
    """Tracking nudging: currents re-measured until I = β(y − ŷ)."""

    tolerance: Positive = _f(1e-7, "max |I − β(y − ŷ)|", "model units")
    max_iterations: int = _f(100, "cap on tracking steps", "1", gt=0)


class SettleFixed(Strict):
    """Settle by waiting a fixed time."""

    mode: Literal["fixed"] = _f("fixed", "wait a fixed time")
    time: quantity(SECOND, "the wait", ge=0, le=3600) = 1e-3


class SettleUntilStable(Strict):
    """Settle by reading until consecutive readings agree, or a timeout."""

    mode: Literal["until_stable"] = _f(description="read until stable")
    tolerance: Positive = _f(description="largest change between consecutive readings", unit="model units")
    timeout: quantity(SECOND, "give up after this long", gt=0, le=3600)
    interval: quantity(SECOND, "wait between readings", gt=0, le=3600) = 1e-3

    @model_validator(mode="after")
    def _order(self) -> SettleUntilStable:
        if self.interval > self.timeout:
            raise ValueError(f"interval ({self.interval:g} s) must not exceed timeout ({self.timeout:g} s)")
        return self


ADAPTIVE_MAX_TAUS = 20.0  # the adaptive settle's default longest wait, in τ: enough for Δ/tol up to e^20 ≈ 5e8


class SettleAdaptive(Strict):
    """Settle for as long as a first-order settle of the expected change needs.

    Each wait is ``clip(τ·ln(Δ̂/tolerance), min, max)`` (zero when Δ̂ ≤ tolerance), where Δ̂
    is the engine's prediction of how far the readings (θ and ŷ) move across this settle,
    from the changes it has observed so far (never from a model of the physics). Before
    anything is known the wait is ``max``.
    """

    mode: Literal["adaptive"] = _f(description="wait τ·ln(Δ̂/tolerance) for the change Δ̂ the engine expects")
    tau: quantity(SECOND, "the bench's settling time constant τ ('aeqlab calibrate' measures it)", gt=0, le=3600)
    tolerance: Positive | None = _f(
        None, "how close to equilibrium a reading must be (default: method.homeostasis.tolerance)", "model units"
    )
    max: quantity(
        SECOND,
        f"longest single wait, and the wait before anything has been observed (default {ADAPTIVE_MAX_TAUS:g} τ)",
        optional=True,
        gt=0,
        le=3600,
    ) = None
    min: quantity(SECOND, "shortest wait", ge=0, le=3600) = 0.0

    @property
    def longest(self) -> float:
        """The longest single wait in seconds (``max``, or its default of 20 τ)."""
        return self.max if self.max is not None else ADAPTIVE_MAX_TAUS * self.tau

    @model_validator(mode="after")
    def _order(self) -> SettleAdaptive:
        problems: list[tuple[tuple, str]] = []
        if self.max is not None and self.max < self.tau:
            problems.append(
                (("max",), f"must be at least tau ({self.tau:g} s), got {self.max:g} s: a shorter wait cannot settle")
            )
        elif self.min > self.longest:
            problems.append((("min",), f"must not exceed max ({self.longest:g} s), got {self.min:g} s"))
        _problems("SettleAdaptive", problems)
        return self


def _settle_shorthand(v: Any) -> Any:
    """``settle: 5 ms`` (or a number of seconds) is ``{mode: fixed, time: 5 ms}``."""
    if isinstance(v, int | float | str) and not isinstance(v, bool):
        return {"mode": "fixed", "time": v}
    return v


SettlePolicy = Annotated[
    SettleFixed | SettleUntilStable | SettleAdaptive,
    BeforeValidator(_settle_shorthand),
    Field(discriminator="mode"),
]


class Spsa(Strict):
    """SPSA baseline: simultaneous perturbation of every parameter, two loss readings per sample.

    Gains follow Spall's sequences: a_k = a/(k + 1 + A)^alpha, c_k = c/(k + 1)^gamma.
    """

    a: Positive = _f(0.05, "step gain a", "model units")
    c: Positive = _f(0.01, "perturbation size c: θ is held at θ* ± c_k·Δ", "model units")
    alpha: float = _f(0.602, "decay exponent of the step gain", "1", ge=0, le=1)
    gamma: float = _f(0.101, "decay exponent of the perturbation size", "1", ge=0, le=1)
    stability: float = _f(0.0, "stability constant A of the step gain", "samples", ge=0)
    seed: Seed = _f(0, "seed of the perturbation directions Δ (±1 each)", "1")


class Exact(Strict):
    """Exact-gradient baseline (twin only): θ* ← θ* − scale·β·ε⊙∇L, with the oracle's ∇L."""

    scale: Positive = _f(1.0, "step relative to β·ε (what an Aeqprop step of strength β approaches)", "1")


BUILTIN_METHODS = ("aeqprop", "spsa", "exact")


def method_names() -> list[str]:
    """The built-in methods, then the plug-ins installed under the entry-point group ``aeqlab.methods``."""
    from importlib import metadata

    plugins = sorted({ep.name for ep in metadata.entry_points(group="aeqlab.methods")} - set(BUILTIN_METHODS))
    return [*BUILTIN_METHODS, *plugins]


class Method(Strict):
    """The training method: Aeqprop (its variant, nudging and feedback loops), or a baseline."""

    name: str = _f(
        "aeqprop",
        "training method: aeqprop, the baselines spsa (order zero) and exact (twin's oracle gradient), "
        "or a plug-in of the entry-point group aeqlab.methods",
    )

    @field_validator("name")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v in BUILTIN_METHODS:  # no scan of the installed distributions (milliseconds) for a built-in
            return v
        known = method_names()
        if v not in known:
            raise ValueError(f"unknown method {v!r}: use one of {', '.join(known)}")
        return v
    variant: Literal["centered", "optimistic", "pessimistic"] = _f(
        "centered", "(β₁, β₂): centered (−β/2, β/2), optimistic (0, β), pessimistic (−β, 0)"
    )
    beta: Positive = _f(1.0, "nudging strength β", "model units")
    nudging: Literal["tracking", "linearized"] = _f(
        "tracking", "tracking: I = β(y − ŷ) re-measured; linearized: fixed from the free phase"
    )
    homeostasis: Homeostasis = _f(Homeostasis(), "feedback that holds θ at its targets")
    tracking: Tracking = _f(Tracking(), "tracking nudging's loop")
    settle_policy: SettlePolicy = Field(
        default_factory=SettleFixed,
        alias="settle",
        description="settle policy: a wait such as '1 ms', {mode: until_stable, tolerance, timeout}, "
        "or {mode: adaptive, tau}: τ·ln(Δ̂/tolerance) for the change Δ̂ expected",
    )
    free_phase_homeostasis: bool = _f(True, "hold θ at its targets while predicting")
    spsa: Spsa = _f(Spsa(), "options of method spsa")
    exact: Exact = _f(Exact(), "options of method exact")

    @property
    def settle(self) -> float:
        """The settle wait in seconds (for ``until_stable`` its timeout, for ``adaptive`` its max: the longest wait)."""
        p = self.settle_policy
        if isinstance(p, SettleFixed):
            return p.time
        return p.longest if isinstance(p, SettleAdaptive) else p.timeout

    @model_validator(mode="after")
    def _tracking_singularity(self) -> Method:
        if self.name != "aeqprop":
            return self._baseline_checks()
        if self.nudging == "tracking" and self.variant in ("centered", "pessimistic"):
            beta1 = -self.beta / 2 if self.variant == "centered" else -self.beta
            if beta1 <= -1:
                _problems(
                    "Method",
                    [
                        (
                            ("beta",),
                            f"tracking nudging is singular at beta1 = {beta1:g} <= -1 "
                            "(lower beta, or use nudging: linearized)",
                        )
                    ],
                )
        return self

    def _baseline_checks(self) -> Method:
        """The baselines move θ through homeostasis targets; SPSA's perturbation must be measurable."""
        problems: list[tuple[tuple, str]] = []
        if not self.free_phase_homeostasis:
            problems.append(
                (("free_phase_homeostasis",), f"method {self.name} moves θ by homeostasis: it must be true")
            )
        if self.homeostasis.targets == "incremental":
            problems.append(
                (
                    ("homeostasis", "targets"),
                    f"method {self.name} sets its targets itself: incremental targets are Aeqprop's (use measured)",
                )
            )
        if self.name == "spsa" and self.spsa.c <= 10 * self.homeostasis.tolerance:
            problems.append(
                (
                    ("spsa", "c"),
                    f"perturbation {self.spsa.c:g} is not above 10 x homeostasis.tolerance "
                    f"({self.homeostasis.tolerance:g}): θ ± c·Δ could not be told apart",
                )
            )
        _problems("Method", problems)
        return self

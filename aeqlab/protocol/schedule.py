"""How long to train, when to evaluate and checkpoint, and how β changes."""

from __future__ import annotations

from pydantic import field_validator

from aeqlab.protocol.fields import Positive, Strict, _f


class BetaStep(Strict):
    """From ``epoch`` on, train at ``beta`` (then decayed by beta_decay each epoch)."""

    epoch: int = _f(description="first epoch at this β", unit="1", ge=1)
    beta: Positive = _f(description="nudging strength from that epoch", unit="model units")


class Schedule(Strict):
    """How long to train, how often to evaluate and checkpoint, and how β changes."""

    epochs: int = _f(10, "training epochs", "1", gt=0, le=1_000_000)
    beta_decay: Positive = _f(1.0, "β is multiplied by this after each epoch", "1", le=1.0)
    beta_steps: list[BetaStep] = _f([], "step schedule of β: [{epoch: 10, beta: 0.2}, ...]")
    shuffle: bool = _f(True, "shuffle the training order every epoch")
    evaluate_every: int = _f(1, "evaluate on the test set every this many epochs", "epochs", gt=0)
    checkpoint_every: int | None = _f(
        None, "save the parameters every this many epochs (none: at the end)", "epochs", gt=0
    )

    @field_validator("beta_steps")
    @classmethod
    def _increasing(cls, v: list[BetaStep]) -> list[BetaStep]:
        epochs = [s.epoch for s in v]
        if epochs != sorted(set(epochs)):
            raise ValueError(f"epochs must increase: {epochs}")
        return v

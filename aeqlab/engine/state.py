"""What the engine carries from sample to sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aeqlab.engine.methods.phases import FeedbackMemory


@dataclass
class EngineState:
    """Targets θ*, knob setpoints and the learnt feedback memory (gains, susceptibility, settle)."""

    targets: np.ndarray
    knobs: np.ndarray
    memory: FeedbackMemory

"""What a run runs on, as the engine and the run level see it: a bench, and what a backend offers besides.

The composition roots of :mod:`aeqlab.backends` build one per kind (``sim``,
``emulate``, ``bench``); nothing below them knows which kind it got. Only backends
over a twin offer ``snapshot``/``restore`` (an exact resume), ``stability`` (the
stability ratio ρ of the twin's joint equilibrium) and ``oracle`` (the twin's exact
gradient, for the ``exact`` baseline): the diagnostics interface of the twin.

A backend is a context manager: on the way out every source goes to its safe state
and everything is closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aeqlab.engine.bench import Bench
from aeqlab.signals import shielded


@dataclass
class Backend:
    kind: str
    bench: Bench
    snapshot: Callable[[], dict] | None = None
    restore: Callable[[dict], None] | None = None
    diagnostics: Callable[[], dict[str, Any]] = lambda: {}
    closers: list[Callable[[], None]] = field(default_factory=list)
    twin: Any = None  # the twin object itself, for composition-root tools (gradcheck, plan)
    oracle: Callable[[Any, Any], Any] | None = None  # ε⊙∇L at the present equilibrium (method exact)
    stability: Callable[[np.ndarray], float] | None = None  # largest ρ over some inputs, at the held parameters
    # unstable jumps the twin saw since last taken (count, largest ρ; peek=True takes nothing); a twin's
    unstable_jumps: Callable[..., tuple[int, float]] | None = None
    closed: bool = False

    def safe_state(self) -> list[str]:
        """Every source to its safe state; returns the failures (never raises)."""
        return self.bench.safe_state()

    def close(self) -> None:
        """Close instruments, then stop emulators; never raises; closing twice does nothing."""
        if self.closed:
            return
        self.closed = True
        try:
            self.bench.close()
        except Exception:  # noqa: BLE001 - closing must reach every resource
            pass
        for closer in reversed(self.closers):
            try:
                closer()
            except Exception:  # noqa: BLE001 - closing must reach every resource
                pass

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        with shielded():  # a Ctrl-C now would only cut the way to the safe state short
            try:
                self.safe_state()
            finally:
                self.close()

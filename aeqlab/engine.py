"""The training engine: epochs of samples, each a plan executed against a bench.

The engine knows only the bench (and through it the drivers' capability Protocols);
it owns cleanup: whatever happens, every source goes to its safe state on the way out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from aeqlab.bench import Bench
from aeqlab.datasets import Split
from aeqlab.feedback import SecantGains
from aeqlab.methods.aeqprop import EngineState, SampleRecord, predict, train_sample
from aeqlab.methods.phases import FeedbackMemory
from aeqlab.plan import execute
from aeqlab.protocol import Protocol


@dataclass
class EpochMetrics:
    epoch: int
    samples: int  # training samples so far
    beta: float
    train_accuracy: float  # running accuracy of the free-phase predictions during the epoch
    train_loss: float
    test_accuracy: float
    test_loss: float
    homeostasis_iterations: float  # mean per sample
    homeostasis_unconverged: int
    saturated: int
    step_norm: float  # mean ‖θ′ − θ_h‖
    wall_s: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Evaluation:
    accuracy: float
    loss: float


@dataclass
class SampleEvent:
    """Sent to observers after each training sample."""

    epoch: int
    index: int
    total: int
    record: SampleRecord


@dataclass
class Trainer:
    """Runs a protocol's method and schedule on a bench.

    Parameters
    ----------
    protocol, bench, data
        What to run, where, on what.
    on_sample, on_epoch
        Observers (progress display, run store).
    """

    protocol: Protocol
    bench: Bench
    data: Split
    on_sample: Callable[[SampleEvent], None] | None = None
    on_epoch: Callable[[EpochMetrics], None] | None = None
    history: list[EpochMetrics] = field(default_factory=list)
    state: EngineState | None = None
    samples_done: int = 0

    def start(self) -> None:
        """Take the bench as found: read θ (the first targets) and the knob setpoints."""
        b = self.bench
        knobs = b.setpoints("knobs")
        lo, hi = b.roles["knobs"].model_bounds
        n = knobs.size
        low = np.full(n, lo)
        high = np.full(n, hi)
        for inst, pos, ch in b.roles["knobs"].groups:
            table = b.instruments[inst].output_limits
            w = b.roles["knobs"]
            a, c = w.to_model(table.low[ch]), w.to_model(table.high[ch])
            low[pos] = np.maximum(low[pos], np.minimum(a, c))
            high[pos] = np.minimum(high[pos], np.maximum(a, c))
        memory = FeedbackMemory(
            knob_gains=SecantGains(n, 1.0, min_step=10 * self.protocol.method.homeostasis.tolerance),
            susceptibility=np.eye(b.roles["nudges"].size),
            knob_low=low,
            knob_high=high,
        )
        b.write("nudges", np.zeros(b.roles["nudges"].size))
        b.switch("nudges", True)
        targets = b.read("params")
        self.state = EngineState(targets=targets, knobs=knobs, memory=memory)

    def evaluate(self, x: np.ndarray, labels: np.ndarray) -> Evaluation:
        method = self.protocol.method
        targets = self.data.targets(labels)
        correct, loss = 0, 0.0
        for xi, ti, li in zip(x, targets, labels):
            out = execute(predict(self.state, xi, method), self.bench)
            correct += int(np.argmax(out) == li)
            loss += 0.5 * float(np.sum((out - ti) ** 2))
        return Evaluation(correct / len(labels), loss / len(labels))

    def train_epoch(self, epoch: int, beta: float, rng: np.random.Generator) -> EpochMetrics:
        method = self.protocol.method
        t0 = time.perf_counter()
        n = len(self.data.y_train)
        order = rng.permutation(n) if self.protocol.schedule.shuffle else np.arange(n)
        targets = self.data.targets(self.data.y_train)
        correct, loss, iters, unconv, sat, step = 0, 0.0, 0, 0, 0, 0.0
        for k, i in enumerate(order):
            rec = execute(train_sample(self.state, self.data.x_train[i], targets[i], method, beta), self.bench)
            self.samples_done += 1
            correct += rec.correct
            loss += rec.loss
            iters += rec.homeostasis_iterations
            unconv += not rec.converged
            sat += rec.saturated
            step += float(np.linalg.norm(rec.step))
            if self.on_sample:
                self.on_sample(SampleEvent(epoch, k, n, rec))
        ev = self.evaluate(self.data.x_test, self.data.y_test)
        m = EpochMetrics(
            epoch=epoch,
            samples=self.samples_done,
            beta=beta,
            train_accuracy=correct / n,
            train_loss=loss / n,
            test_accuracy=ev.accuracy,
            test_loss=ev.loss,
            homeostasis_iterations=iters / n,
            homeostasis_unconverged=unconv,
            saturated=sat,
            step_norm=step / n,
            wall_s=time.perf_counter() - t0,
        )
        self.history.append(m)
        if self.on_epoch:
            self.on_epoch(m)
        return m

    def run(self, epochs: int, seed: int) -> tuple[Evaluation, list[EpochMetrics]]:
        """Train for ``epochs``; returns the initial evaluation and per-epoch metrics.

        Every source goes to its safe state on the way out, whatever happens.
        """
        rng = np.random.default_rng(seed)
        try:
            self.start()
            initial = self.evaluate(self.data.x_test, self.data.y_test)
            beta = self.protocol.method.beta
            for epoch in range(1, epochs + 1):
                self.train_epoch(epoch, beta, rng)
                beta *= self.protocol.schedule.beta_decay
            return initial, self.history
        finally:
            self.shutdown()

    def shutdown(self) -> list[str]:
        failures = self.bench.safe_state()
        return failures

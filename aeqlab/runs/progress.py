"""Progress of a run: a live rich panel on a terminal, plain log lines otherwise.

The live panel shows the epoch and sample progress with an ETA, the running loss and
accuracy of the epoch's free-phase predictions, homeostasis iterations, the last
nudge size and samples per second. Without a terminal (a log file, a pipe, CI) the
same figures go out as plain lines: one per epoch and one every few seconds.
"""

from __future__ import annotations

import time

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from aeqlab.engine.trainer import EpochMetrics, SampleEvent

LOG_EVERY_S = 5.0


class Progress:
    """Observer of a training run (sample and epoch events).

    Parameters
    ----------
    console
        Where to draw (a terminal gets the live panel, anything else plain lines).
    epochs, samples_per_epoch
        The run's size.
    start
        Training samples already done (a resumed run).
    quiet
        Show nothing.
    """

    def __init__(self, console: Console, epochs: int, samples_per_epoch: int, quiet: bool = False, start: int = 0):
        self.console = console
        self.epochs = epochs
        self.per_epoch = samples_per_epoch
        self.live = console.is_terminal and not quiet
        self.quiet = quiet
        self.start = start
        self._bar: RichProgress | None = None
        self._task = None
        self._t0 = time.perf_counter()
        self._last_log = self._t0
        self._n = 0  # samples seen by this process
        self._iters = 0.0
        self._epoch_n = 0
        self._correct = 0
        self._loss = 0.0
        self._nudge = 0.0
        self._test = "-"

    @property
    def total(self) -> int:
        return self.epochs * self.per_epoch

    def __enter__(self) -> Progress:
        self._t0 = self._last_log = time.perf_counter()
        if self.live:
            self._bar = RichProgress(
                TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[rate]:.1f} samples/s"),
                TextColumn("loss {task.fields[loss]:.4f} acc {task.fields[acc]:.3f}"),
                TextColumn("homeostasis {task.fields[iters]:.1f} it"),
                TextColumn("nudge {task.fields[nudge]:.2e}"),
                TextColumn("test {task.fields[test]}"),
                console=self.console,
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                "train",
                total=self.total,
                completed=self.start,
                epoch=self.start // max(self.per_epoch, 1) + 1,
                epochs=self.epochs,
                rate=0.0,
                loss=0.0,
                acc=0.0,
                iters=0.0,
                nudge=0.0,
                test=self._test,
            )
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def sample(self, ev: SampleEvent) -> None:
        """One training sample done."""
        self._n += 1
        rec = ev.record
        if ev.index == 0 or self._epoch_n > ev.index:
            self._epoch_n, self._correct, self._loss = 0, 0, 0.0
        self._epoch_n += 1
        self._correct += rec.correct
        self._loss += rec.loss
        self._iters += rec.homeostasis_iterations
        self._nudge = float(np.linalg.norm(rec.clamped.currents))
        if self.quiet:
            return
        now = time.perf_counter()
        rate = self._n / max(now - self._t0, 1e-9)
        done = ev.samples_done or self.start + self._n
        if self._bar is not None:
            if self._n % 5 == 0 or ev.index + 1 == ev.total:
                self._bar.update(
                    self._task,
                    completed=done,
                    epoch=ev.epoch,
                    rate=rate,
                    loss=self._loss / self._epoch_n,
                    acc=self._correct / self._epoch_n,
                    iters=self._iters / self._n,
                    nudge=self._nudge,
                )
        elif now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            eta = (self.total - done) / rate if rate > 0 else float("nan")
            self.console.print(
                f"epoch {ev.epoch}/{self.epochs} sample {ev.index + 1}/{ev.total} ({done}/{self.total}, "
                f"ETA {eta:.0f} s): loss {self._loss / self._epoch_n:.4f}, acc {self._correct / self._epoch_n:.3f}, "
                f"homeostasis {self._iters / self._n:.1f} it, nudge {self._nudge:.2e}, {rate:.1f} samples/s"
            )

    def epoch(self, m: EpochMetrics) -> None:
        """One epoch done (with its evaluation)."""
        self._test = f"{m.test_accuracy:.3f}"
        if self._bar is not None:
            self._bar.update(self._task, test=self._test)
        elif not self.quiet:
            self.console.print(
                f"epoch {m.epoch}/{self.epochs}: train acc {m.train_accuracy:.3f}, test acc {m.test_accuracy:.3f}, "
                f"test loss {m.test_loss:.4f}, homeostasis {m.homeostasis_iterations:.1f} it/sample, "
                f"{m.wall_s:.1f} s"
            )

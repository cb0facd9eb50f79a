"""Progress of a run: a live rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from aeqlab.engine import EpochMetrics, SampleEvent


class Progress:
    """Observer of a training run (sample and epoch events)."""

    def __init__(self, console: Console, epochs: int, samples_per_epoch: int, quiet: bool = False):
        self.console = console
        self.epochs = epochs
        self.per_epoch = samples_per_epoch
        self.live = console.is_terminal and not quiet
        self.quiet = quiet
        self._bar: RichProgress | None = None
        self._task = None
        self._t0 = time.perf_counter()
        self._iters = 0.0
        self._n = 0

    def __enter__(self) -> Progress:
        self._t0 = time.perf_counter()
        if self.live:
            self._bar = RichProgress(
                TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.1f} samples/s"),
                TextColumn("homeostasis {task.fields[iters]:.1f} it"),
                TextColumn("test acc {task.fields[acc]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(
                "train", total=self.epochs * self.per_epoch, epoch=1, epochs=self.epochs, rate=0.0, iters=0.0, acc="-"
            )
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def sample(self, ev: SampleEvent) -> None:
        self._n += 1
        self._iters += ev.record.homeostasis_iterations
        if self._bar is not None and (self._n % 10 == 0 or ev.index + 1 == ev.total):
            rate = self._n / max(time.perf_counter() - self._t0, 1e-9)
            self._bar.update(self._task, completed=self._n, epoch=ev.epoch, rate=rate, iters=self._iters / self._n)

    def epoch(self, m: EpochMetrics) -> None:
        if self._bar is not None:
            self._bar.update(self._task, acc=f"{m.test_accuracy:.3f}")
        elif not self.quiet:
            self.console.print(
                f"epoch {m.epoch}/{self.epochs}: train acc {m.train_accuracy:.3f}, test acc {m.test_accuracy:.3f}, "
                f"test loss {m.test_loss:.4f}, homeostasis {m.homeostasis_iterations:.1f} it/sample, "
                f"{m.wall_s:.1f} s"
            )

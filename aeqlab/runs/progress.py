"""The live view of a run in a terminal, as a subscriber of the run engine; plain lines elsewhere.

On a terminal the live lines show the epoch and sample progress with a labelled ETA,
the running loss and accuracy of the free-phase predictions over the last
:func:`running_window` samples (the same window as the report's and the watch page's
"train (running)" curves; fewer at the start), homeostasis iterations, the last nudge size and samples per second;
fields that do not fit the width go to the next line (never cut), and each finished
epoch leaves one line above the live ones. Without a terminal (a log file, a pipe,
CI) the same figures go out as plain lines: one after the first sample (a log shows at once that
training is under way), one every few seconds and one per epoch.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from aeqlab.runs.events import Closed, EpochDone, InitialEvaluation, Opened, RunEvent, SampleDone
from aeqlab.runs.stability import StabilityChecked

LOG_EVERY_S = 5.0
RUNNING_WINDOW = 200  # samples: the running curves appear during the first epoch of a long run


def running_window(samples_per_epoch: int) -> int:
    """Samples the running loss and accuracy average over: an epoch, at most :data:`RUNNING_WINDOW`."""
    return max(1, min(int(samples_per_epoch), RUNNING_WINDOW))


def _clock(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "-:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def pack_fields(fields: list[str], width: int, sep: str = "  ") -> list[str]:
    """Fields on lines of at most ``width`` characters, in order; a field is never cut (one too long stands alone)."""
    lines: list[str] = []
    line = ""
    for f in fields:
        candidate = f if not line else line + sep + f
        if line and len(candidate) > width:
            lines.append(line)
            line = f
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines


class LiveView:
    """Subscriber that shows a run's progress.

    Parameters
    ----------
    console
        Where to draw (a terminal gets the live lines, anything else plain lines).
    quiet
        Show nothing.
    """

    def __init__(self, console: Console, quiet: bool = False):
        self.console = console
        self.quiet = quiet
        self.live_mode = console.is_terminal and not quiet
        self._live: Live | None = None
        self.epochs = self.per_epoch = self.start = 0
        self.metric = "acc"
        self.run_dir: str | None = None
        self._t0 = self._last_log = time.perf_counter()
        self._n = 0
        self._iters = 0.0
        self._recent: deque[tuple[int, float]] = deque(maxlen=1)  # (correct, loss) of the last samples
        self._sse_targets: list[np.ndarray] = []
        self._nudge = 0.0
        self._test = "-"
        self._epoch = 1
        self._done = 0
        self._rho = "-"

    @property
    def total(self) -> int:
        return self.epochs * self.per_epoch

    # ------------------------------------------------------------------ events
    def __call__(self, event: RunEvent) -> None:
        if isinstance(event, SampleDone):
            self.sample(event)
        elif isinstance(event, EpochDone):
            self.epoch(event)
        elif isinstance(event, InitialEvaluation):
            self._test = f"{event.accuracy:.3f}"
        elif isinstance(event, Opened):
            self.open(event)
        elif isinstance(event, StabilityChecked):
            self.stability(event)
        elif isinstance(event, Closed):
            self.close()

    def open(self, ev: Opened) -> None:
        self.epochs, self.per_epoch, self.start = ev.epochs, ev.samples_per_epoch, ev.samples_done
        self.metric = "R²" if ev.task == "regression" else "acc"
        self.run_dir = ev.run_dir
        self._recent = deque(maxlen=running_window(ev.samples_per_epoch))
        self._done = ev.samples_done
        self._epoch = ev.samples_done // max(self.per_epoch, 1) + 1
        self._t0 = self._last_log = time.perf_counter()
        if self.quiet:
            return
        if ev.run_dir:
            self.console.print(
                f"run folder {ev.run_dir}\n  follow it live: aeqlab watch {ev.run_dir}\n"
                f"  figures when it ends: aeqlab report {ev.run_dir}",
                markup=False,
                highlight=False,
            )
        if ev.parent:
            p = ev.parent
            self.console.print(
                f"  a child run: from the best parameters of {p['run_dir']} (epoch {p['epoch']}, sample "
                f"{p['samples']}, validation {p['validation_accuracy']:.3f}), beta {p['beta']:g}",
                markup=False,
                highlight=False,
            )
        if self.live_mode:
            self._live = Live(self._render(), console=self.console, auto_refresh=False, transient=False)
            self._live.__enter__()

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self._render(), refresh=True)
            self._live.__exit__(None, None, None)
            self._live = None

    def sample(self, event: SampleDone) -> None:
        ev = event.sample
        rec = ev.record
        self._n += 1
        self._recent.append((int(rec.correct), float(rec.loss)))
        self._iters += rec.homeostasis_iterations
        fields = rec.journal_fields()
        self._nudge = float(fields.get("nudge_norm", 0.0))
        self._epoch, self._done = ev.epoch, ev.samples_done
        if self.quiet:
            return
        now = time.perf_counter()
        if self._live is not None:
            if self._n % 5 == 0 or ev.index + 1 == ev.total:
                self._live.update(self._render(), refresh=True)
        elif self._n == 1 or now - self._last_log >= LOG_EVERY_S:  # the first at once
            self._last_log = now
            self.console.print("  ".join(self._fields()), markup=False, highlight=False)

    def epoch(self, event: EpochDone) -> None:
        m = event.metrics
        if m.test_accuracy is not None:
            self._test = f"{m.test_accuracy:.3f}"
        if self.quiet:
            return
        test = (
            f"test {self.metric} {m.test_accuracy:.3f}, test loss {m.test_loss:.4f}"
            if m.test_accuracy is not None
            else "not evaluated (schedule.evaluate_every)"
        )
        line = (
            f"epoch {m.epoch}/{self.epochs}: train {self.metric} {m.train_accuracy:.3f}, {test}, "
            f"homeostasis {m.homeostasis_iterations:.1f} it/sample, {m.wall_s:.1f} s"
        )
        self.console.print(line, markup=False, highlight=False)  # above the live lines
        if self._live is not None:
            self._live.update(self._render(), refresh=True)

    def stability(self, event: StabilityChecked) -> None:
        """A stability reading: in the live lines; a line of its own when the monitor acted."""
        mark = "" if event.action == "none" else f" ({event.action})"
        self._rho = f"{event.rho:.3f}{'' if event.source == 'twin' else ' bench'}{mark}"
        if self.quiet or event.action == "none" or event.replayed:
            return
        line = (
            f"stability at sample {event.samples_done}: rho {event.rho:.3f} >= {event.threshold:g} "
            f"({event.source}), {event.action}: {event.detail}"
            + (f"; beta now {event.beta:.4g}" if event.action == "rollback" else "")
        )
        self.console.print(line, markup=False, highlight=False)

    # ------------------------------------------------------------------ drawing
    def _rate(self) -> float:
        return self._n / max(time.perf_counter() - self._t0, 1e-9)

    def _fields(self) -> list[str]:
        rate = self._rate()
        eta = (self.total - self._done) / rate if rate > 0 and self._n else float("nan")
        return [
            f"epoch {self._epoch}/{self.epochs}",
            f"sample {self._done}/{self.total}",
            f"ETA {_clock(eta)}",
            self.running(),
            f"homeostasis {self._iters / max(self._n, 1):.1f} it",
            f"nudge {self._nudge:.2e}",
            f"{rate:.1f} samples/s",
            f"test {self.metric} {self._test}",
            *([f"rho {self._rho}"] if self._rho != "-" else []),
        ]

    def running(self) -> str:
        """``last 200: loss 0.1234 acc 0.812``: the means over the running window (a regression's R² is per epoch)."""
        if not self._recent:
            return f"last {self._recent.maxlen}: no sample yet"
        correct, loss = np.mean(np.array(self._recent, dtype=float), axis=0)
        acc = f" acc {correct:.3f}" if self.metric == "acc" else ""
        return f"last {len(self._recent)}: loss {loss:.4f}{acc}"

    def _render(self) -> Group:
        width = max(self.console.width, 20)
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            ProgressBar(total=max(self.total, 1), completed=self._done, width=max(width - 6, 10)),
            f"{100 * self._done / max(self.total, 1):3.0f}%",
        )
        return Group(grid, *(Text(line) for line in pack_fields(self._fields(), width)))

"""The live progress of a sweep: points done, running, failed; the ETA; the Dask dashboard.

One line, redrawn on a terminal (rich's ``Live``); a line per finished point above it.
Off a terminal only the per-point lines are printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Progress of a sweep on ``console`` (a rich Console; None shows nothing)."""

    def __init__(self, console: Any | None):
        self.console = console
        self.total = self.done = self.failed = self.done_here = 0
        self.dashboard: str | None = None
        self.running_fn: Callable[[], int] = lambda: 0
        self.t0 = time.monotonic()
        self.live = None

    def start(self, total: int, done: int) -> None:
        self.total, self.done, self.t0 = total, done, time.monotonic()
        if self.console is not None and self.console.is_terminal and done < total:
            from rich.live import Live

            self.live = Live(get_renderable=self.line, console=self.console, refresh_per_second=2, transient=True)
            self.live.start()

    def line(self) -> str:
        """``done 4/18 · running 2 · failed 0 · ETA 1m20s · dashboard http://...``"""
        left = self.total - self.done
        if self.done_here:
            eta = _duration((time.monotonic() - self.t0) / self.done_here * left)
        else:
            eta = "?"
        text = (
            f"done {self.done}/{self.total} · running {self.running_fn()} · failed {self.failed} · "
            f"elapsed {_duration(time.monotonic() - self.t0)} · ETA {eta if left else '0s'}"
        )
        return text + (f" · dashboard {self.dashboard}" if self.dashboard else "")

    def finished(self, result: dict[str, Any]) -> None:
        self.done += 1
        if result.get("did") != "skipped":
            self.done_here += 1
        if result.get("status") == "failed":
            self.failed += 1
        if self.console is not None:
            status = result.get("status")
            extra = f": {result['error']}" if result.get("error") and status != "completed" else ""
            acc = result.get("final_test")
            shown = f" test {acc:.3f}" if isinstance(acc, float) and acc == acc else ""
            name = result.get("label") or result.get("key", "")[:12]
            self.console.print(
                f"[{self.done}/{self.total}] {name} {result.get('did')}: {status}{shown}{extra}",
                markup=False,
                highlight=False,
            )

    def note(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, markup=False, highlight=False)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self.console is not None and self.total:
            self.console.print(self.line(), markup=False, highlight=False)

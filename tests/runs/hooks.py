"""Fault injection for tests: after the N-th instrument message of this process, act.

A spec is comma-separated ``ACTION@N``: ``kill`` (SIGKILL to this process), ``sigint``
(a real SIGINT to this process), ``fault`` (an :class:`InstrumentError` from the
instrument), ``stop`` (sets the stop event given to :func:`install`). The hook wraps
:meth:`aeqlab.engine.bench.Bench.apply`, so it counts every message a bench applies.
"""

from __future__ import annotations

import os
import signal
import threading

from aeqlab.engine.bench import Bench
from aeqlab.errors import InstrumentError


class MessageHook:
    def __init__(self, spec: str, stop: threading.Event | None = None):
        self.count = 0
        self.stop = stop
        self.actions: dict[int, list[str]] = {}
        for item in spec.split(","):
            action, _, n = item.strip().partition("@")
            self.actions.setdefault(int(n), []).append(action)

    def before(self) -> None:
        self.count += 1
        for action in self.actions.get(self.count, []):
            if action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif action == "sigint":
                os.kill(os.getpid(), signal.SIGINT)
            elif action == "fault":
                raise InstrumentError("injected fault (test hook)", where="test hook")
            elif action == "stop":
                self.stop.set()


def install(spec: str, stop: threading.Event | None = None):
    """Wrap ``Bench.apply`` with a hook; returns a function that takes it off again."""
    hook = MessageHook(spec, stop)
    real = Bench.apply

    def apply(self, msg):
        hook.before()
        return real(self, msg)

    Bench.apply = apply

    def remove() -> None:
        Bench.apply = real

    return remove

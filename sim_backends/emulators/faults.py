"""Reply faults an emulator can be told to inject: late, missing or garbled replies."""

from __future__ import annotations

from collections import deque


class ReplyFaults:
    """A queue of faults for the next replies, and a reply dropped every N (a timeout).

    Emulators inherit it and call :meth:`_next_fault` once per reply they are about to send.
    """

    def _init_faults(self) -> None:
        self._faults: deque[tuple[str, object]] = deque()
        self.latency = 0.0  # seconds each command line takes
        self.drop_every = 0  # every N-th reply is never sent (a timeout); 0: never
        self._replies = 0

    def _next_fault(self) -> tuple[str, object] | None:
        """The fault for the reply about to be sent: ``("drop"|"delay"|"garbage", arg)`` or None."""
        self._replies += 1
        if self._faults:
            return self._faults.popleft()
        if self.drop_every and self._replies % self.drop_every == 0:
            return ("drop", None)
        return None

    def delay_next(self, seconds: float) -> None:
        """Send the next reply ``seconds`` late (a client timing out gets it as a stale reply)."""
        self._faults.append(("delay", seconds))

    def drop_next(self) -> None:
        """Never send the next reply."""
        self._faults.append(("drop", None))

    def garbage_next(self, text: str) -> None:
        """Reply ``text`` instead of the next reply."""
        self._faults.append(("garbage", text))

"""Reply faults an emulator can be told to inject: late, missing or garbled replies, a mute spell, a hang-up.

Besides the calls below, a fault can be scheduled from outside the process (the
interrupt stress benchmark does): ``AEQLAB_EMULATOR_FAULTS`` holds JSON
``{"<instrument>": ["timeout"|"garbled"|"mute"|"hangup", at_reply, count]}``. From
reply number ``at_reply`` on, ``count`` replies are dropped (timeout) or garbled;
``mute`` drops every reply from then on while commands still execute; ``hangup``
closes the client connections once (a serial board, which cannot hang up, loses that
reply instead).
"""

from __future__ import annotations

import json
import os
import time
from collections import deque

FAULTS_ENV = "AEQLAB_EMULATOR_FAULTS"


def scheduled_fault(name: str) -> tuple[str, int, int] | None:
    """The fault ``AEQLAB_EMULATOR_FAULTS`` schedules for instrument ``name``, or None."""
    text = os.environ.get(FAULTS_ENV)
    if not text:
        return None
    try:
        entry = json.loads(text).get(name)
        if entry is None:
            return None
        kind, at, count = str(entry[0]), int(entry[1]), int(entry[2]) if len(entry) > 2 else 1
    except (ValueError, TypeError, AttributeError, IndexError):
        return None
    return (kind, at, count) if kind in ("timeout", "garbled", "mute", "hangup") else None


class ReplyFaults:
    """A queue of faults for the next replies, and a reply dropped every N (a timeout).

    Emulators inherit it and call :meth:`_next_fault` once per reply they are about to send.
    """

    def _init_faults(self) -> None:
        self._faults: deque[tuple[str, object]] = deque()
        self.latency = 0.0  # seconds each command line takes
        self.drop_every = 0  # every N-th reply is never sent (a timeout); 0: never
        self._replies = 0
        self.scheduled = scheduled_fault(getattr(self, "name", ""))
        self.reply_times: deque[float] = deque(maxlen=200_000)  # when each reply was due (wall clock)
        self.fault_fired: float | None = None  # when the scheduled fault first acted on a reply

    def _announce(self) -> None:
        """With ``AEQLAB_EMULATOR_LOG`` set, ``fault-<name>.json`` there when the scheduled fault first acts."""
        folder = os.environ.get("AEQLAB_EMULATOR_LOG")  # the emulate backend's log folder
        if folder:
            try:
                path = os.path.join(folder, f"fault-{getattr(self, 'name', 'emulator')}.json")
                with open(path + ".tmp", "w", encoding="utf-8") as fh:
                    json.dump({"time": self.fault_fired, "reply": self._replies}, fh)
                os.replace(path + ".tmp", path)  # whole or absent for a reader watching the folder
            except OSError:
                pass  # a record for observers only

    def reply_record(self) -> dict[str, object]:
        """Replies due so far (their times) and when the scheduled fault first acted (None: not yet)."""
        return {"replies": self._replies, "times": list(self.reply_times), "fault_fired": self.fault_fired}

    def _next_fault(self) -> tuple[str, object] | None:
        """The fault for the reply about to be sent: ``("drop"|"delay"|"garbage", arg)`` or None."""
        self._replies += 1
        self.reply_times.append(time.time())
        if self._faults:
            return self._faults.popleft()
        if self.scheduled is not None and self._replies >= self.scheduled[1]:
            kind, at, count = self.scheduled
            if self.fault_fired is None and (kind in ("mute", "hangup") or self._replies < at + count):
                self.fault_fired = self.reply_times[-1]
                self._announce()
            if kind == "mute":
                return ("drop", None)
            if kind == "hangup":
                self.scheduled = None
                return ("hangup", None)
            if self._replies < at + count:
                return ("drop", None) if kind == "timeout" else ("garbage", "#GARBLED")
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

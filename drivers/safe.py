"""Safe state from knowledge: every channel attempted, each failure isolated, every level confirmed.

:func:`levels_to_safe` is what every source driver's ``safe_state`` does with its levels:
it learns the channels whose value is unknown (read back where the instrument can),
moves all channels not at their safe value together through the guard (ramped and
slew-timed), falls back to one channel at a time when that fails (a bad channel must
not keep the others live; not when the link itself gives no replies, where that would
only multiply timeouts), and confirms the end state by reading it back. It returns
one failure string per channel it could not confirm; [] means every channel is known
to be at its safe value.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from drivers.guard import Send, SourceGuard

Readback = Callable[[np.ndarray], np.ndarray]


def _learn(guard: SourceGuard, ch: np.ndarray, readback: Readback | None) -> None:
    """Read back what is unknown; when that fails the move starts from the value last commanded.

    (An instrument whose replies are lost may still execute commands: the safe value is
    sent anyway, and the confirmation at the end says whether it arrived.)
    """
    lost = guard.unknown(ch)
    if lost.size and readback is not None:
        try:
            guard.know(lost, readback(lost))
        except Exception:  # noqa: BLE001 - see above
            pass


def _to_safe(guard: SourceGuard, ch: np.ndarray, send: Send, readback: Readback | None) -> None:
    _learn(guard, ch, readback)
    target = guard.safe_values(ch)
    away = guard.present[ch] != target  # unknown (NaN) counts as away
    if away.any():
        guard.move(ch[away], target[away], send)


def _silent(exc: BaseException) -> bool:
    """A failure of the link itself (no reply, dropped connection): trying channel by channel cannot help."""
    text = str(exc)
    return "no reply" in text or "connection" in text or "cannot talk" in text


def levels_to_safe(
    guard: SourceGuard, channels: np.ndarray, send: Send, readback: Readback | None, label: Callable[[int], str]
) -> list[str]:
    """Bring ``channels`` to their safe values; return a failure per channel not confirmed there."""
    ch = np.asarray(channels, np.intp).reshape(-1)
    failures: dict[int, str] = {}
    try:
        _to_safe(guard, ch, send, readback)
    except Exception as exc:  # noqa: BLE001 - then channel by channel, each on its own
        # (not when the link gives no replies: the batch was sent and may have arrived; one channel at a time
        # would only multiply the timeouts, and the confirmation below says what is known)
        for c in [] if _silent(exc) else ch:
            try:
                _to_safe(guard, np.array([c]), send, readback)
            except Exception as exc:  # noqa: BLE001
                failures[int(c)] = f"{label(int(c))}: not brought to its safe value ({exc})"
    if readback is not None:
        try:
            _confirm(guard, ch, readback(ch), label, failures)
        except Exception as exc:  # noqa: BLE001
            for c in ch if _silent(exc) else []:
                failures.setdefault(int(c), f"{label(int(c))}: safe value not confirmed ({exc})")
            for c in [] if _silent(exc) else ch:
                one = np.array([c])
                try:
                    _confirm(guard, one, readback(one), label, failures)
                except Exception as exc:  # noqa: BLE001
                    failures.setdefault(int(c), f"{label(int(c))}: safe value not confirmed ({exc})")
    else:
        for c in guard.unknown(ch):
            failures.setdefault(int(c), f"{label(int(c))}: safe value not confirmed")
    return [failures[c] for c in sorted(failures)]


def _confirm(guard: SourceGuard, ch: np.ndarray, levels: np.ndarray, label, failures: dict[int, str]) -> None:
    guard.know(ch, levels)
    target = guard.safe_values(ch)
    for c, have, want in zip(ch, levels, target):
        if have != want:
            failures.setdefault(int(c), f"{label(int(c))}: reads {have:g} after the safe state, not {want:g}")

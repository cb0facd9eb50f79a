"""A Ctrl-C while a failed start-up cleans up: the cleanup is not cut short (every emulator stops)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from aeqlab.backends import emulate
from aeqlab.errors import InstrumentError
from aeqlab.protocol import load_protocol

PROTOCOL = Path(__file__).resolve().parents[2] / "protocols" / "iris_bench_emulated.yaml"


def test_a_ctrl_c_during_a_failed_start_ups_cleanup_still_stops_every_emulator(monkeypatch):
    protocol, _ = load_protocol(PROTOCOL)
    real_start = emulate.start_emulators
    done = []

    def start(p):
        emus = real_start(p)
        real_stop = emus.stop

        def stop():
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C while the cleanup runs
            real_stop()
            done.append([e for e in emus.emulators.values()])

        emus.stop = stop
        return emus

    def garbled(*_a, **_k):
        raise InstrumentError("k1: garbled reply to *IDN?")

    monkeypatch.setattr(emulate, "start_emulators", start)
    monkeypatch.setattr(emulate, "open_instruments", garbled)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own: a Ctrl-C raises
    try:
        with pytest.raises(InstrumentError, match="garbled"):
            emulate.open_emulated(protocol)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(done) == 1  # the cleanup ran to its end
    assert done[0] and all(not _serving(e) for e in done[0])


def _serving(emu) -> bool:
    """An emulator still serves while its server thread runs (SCPI over TCP, or the serial board's pty)."""
    thread = getattr(emu, "_thread", None)
    server = getattr(emu, "_server", "none")
    return server not in (None, "none") or (server == "none" and thread is not None and thread.is_alive())

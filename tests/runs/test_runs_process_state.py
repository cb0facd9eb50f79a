"""A run leaves the process as it found it: the next Ctrl-C in a notebook still raises KeyboardInterrupt."""

from __future__ import annotations

import json
import signal

import pytest
from clirunner import run_cli
from runhelpers import EPOCHS, copy_protocol


def test_a_stopped_run_restores_the_sigint_handler(tmp_path):
    protocol = copy_protocol(tmp_path)
    before = signal.getsignal(signal.SIGINT)
    from hooks import install

    remove = install("sigint@900")  # a real Ctrl-C to this process, mid-run
    try:
        result = run_cli("run", protocol, "--epochs", str(EPOCHS), "--out", tmp_path / "runs", "--json")
    finally:
        remove()
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    if summary["status"] != "interrupted":
        pytest.fail(f"the run was not stopped: {summary['status']}")
    if signal.getsignal(signal.SIGINT) is not before:
        pytest.fail("the in-process runner did not put the SIGINT handler back")
    assert result.leaked_signals == ()

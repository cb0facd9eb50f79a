"""A run leaves the process as it found it: the next Ctrl-C in a notebook still raises KeyboardInterrupt."""

from __future__ import annotations

import json
import signal

import pytest
from clirunner import run_cli
from runhelpers import EPOCHS, copy_protocol


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="run engine restores handlers (issue 11)")
def test_a_stopped_run_restores_the_sigint_handler(tmp_path):
    protocol = copy_protocol(tmp_path)
    before = signal.getsignal(signal.SIGINT)
    result = run_cli(
        "run",
        protocol,
        "--epochs",
        str(EPOCHS),
        "--out",
        tmp_path / "runs",
        "--json",
        env={"AEQLAB_TEST_HOOK": "stop@900"},
    )
    # preconditions fail the test outright (pytest.fail is no AssertionError, so xfail does not hide them)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    if summary["status"] != "interrupted":
        pytest.fail(f"the run was not stopped: {summary['status']}")
    if signal.getsignal(signal.SIGINT) is not before:
        pytest.fail("the in-process runner did not put the SIGINT handler back")
    assert result.leaked_signals == ()

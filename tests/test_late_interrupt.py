"""A Ctrl-C that lands while the interpreter shuts down, after the command is over, ends the process quietly."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the press arrives from an atexit callback: after the command returned, inside the shutdown
LATE = (
    "import atexit, os, runpy, signal, sys\n"
    "atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT))\n"
    "sys.argv = ['aeqlab', 'validate', sys.argv[2], '--json']\n"
    "runpy.run_module(MODULE, run_name='__main__', alter_sys=True)\n"
)


def validate_quietly(script: str, module: str, status: int) -> None:
    """Run ``aeqlab validate --json`` through ``script`` as ``python -m module``: no traceback, that exit status,
    and the JSON on stdout (flushed before the end)."""
    protocol = str(ROOT / "protocols" / "iris_hopfield_sim.yaml")
    proc = subprocess.run(
        [sys.executable, "-c", script.replace("MODULE", repr(module)), "-", protocol],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr, proc.stderr
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "iris_hopfield_sim.yaml" in proc.stdout, proc.stdout


@pytest.mark.parametrize("module", ["aeqlab", "aeqlab.cli"])
def test_a_press_during_shutdown_prints_no_traceback_and_loses_no_output(module):
    validate_quietly(LATE, module, -signal.SIGINT)


def test_in_a_notebook_or_an_interactive_session_sigint_is_left_alone(monkeypatch):
    import types

    from aeqlab.signals import hand_back_at_exit

    def mine(*_):
        pass

    previous = signal.signal(signal.SIGINT, mine)
    try:
        monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
        hand_back_at_exit()
        assert signal.getsignal(signal.SIGINT) is mine  # a kernel keeps its own handler
        monkeypatch.delitem(sys.modules, "IPython")
        monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
        hand_back_at_exit()
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, previous)


# the press lands after the command returned but before SIGINT was handed back (seen under load with a
# second Ctrl-C on an emulated run): it raises KeyboardInterrupt on the way into the hand-back
EARLY = (
    "import runpy, sys\n"
    "import aeqlab.signals as signals\n"
    "real, calls = signals.hand_back_at_exit, []\n"
    "def pressed_on_the_way_in():\n"
    "    calls.append(1)\n"
    "    if len(calls) == 1:\n"
    "        raise KeyboardInterrupt\n"
    "    real()\n"
    "signals.hand_back_at_exit = pressed_on_the_way_in\n"
    "sys.argv = ['aeqlab', 'validate', sys.argv[2], '--json']\n"
    "runpy.run_module(MODULE, run_name='__main__', alter_sys=True)\n"
)


@pytest.mark.parametrize("module", ["aeqlab", "aeqlab.cli"])
def test_a_press_before_the_hand_back_prints_no_traceback_and_keeps_the_commands_status(module):
    validate_quietly(EARLY, module, 0)  # validate's own status

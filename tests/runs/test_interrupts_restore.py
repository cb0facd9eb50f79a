"""A handler installed by C code (``signal.signal`` returned None) cannot be put back: the default goes in."""

from __future__ import annotations

import signal

from aeqlab.signals import put_back, shielded


def test_a_handler_python_did_not_install_is_replaced_by_the_default_not_an_error():
    before = signal.getsignal(signal.SIGTERM)
    try:
        put_back(signal.SIGTERM, None)  # what signal.signal returns for a handler set from C
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)


def test_the_shield_puts_back_the_callers_own_handler():
    def mine(signum, frame):  # noqa: ARG001
        pass

    before = signal.signal(signal.SIGINT, mine)
    try:
        with shielded():
            assert signal.getsignal(signal.SIGINT) is not mine
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, before)

"""Emulators wired to nothing (no twin): fixtures start them and always stop them."""

from __future__ import annotations

import pytest

from sim_backends.emulators import EMULATORS, TwinChannels

SIZES = {"keysight_b2900": 2, "qdac2": 24}


def make_emulator(driver: str):
    cls = EMULATORS[driver]
    if driver == "serial_board":
        return cls("dev", TwinChannels(None, 8), 4, 4)
    return cls("dev", TwinChannels(None, SIZES.get(driver, 1)))


@pytest.fixture
def emulator():
    started = []

    def start(driver: str):
        emu = make_emulator(driver).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()

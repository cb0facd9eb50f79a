"""The composition root: protocol settings reach the drivers; the bench backend on real resources."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from aeqlab.backends import bench as hardware
from aeqlab.backends import emulate, open_backend
from aeqlab.errors import InputError
from aeqlab.protocol import load_protocol, parse_protocol

PROTOCOL = Path(__file__).resolve().parents[2] / "protocols" / "iris_bench_emulated.yaml"


def test_protocol_settings_reach_the_drivers():
    protocol, _ = load_protocol(PROTOCOL)
    board = hardware.driver_settings("board", protocol.instruments["board"])
    assert board.resource == "/dev/ttyACM0" and board.baud == 115200 and board.timeout == 2.0
    assert (board.ramp.step, board.ramp.rate) == (0.5, 500.0) and board.ramp.dwell == pytest.approx(1e-3)
    assert board.options == {"dac_channels": 160, "adc_channels": 160}
    assert hardware.driver_settings("dmm", protocol.instruments["dmm"]).options == {"nplc": 1.0}
    smu = hardware.driver_settings("smu", protocol.instruments["smu"])
    assert smu.options["off_mode"] == "himp" and smu.ramp.step == 5e-6
    assert math.isinf(hardware.driver_settings("dmm", protocol.instruments["dmm"]).ramp.step)


def test_a_driver_without_emulator_is_refused():
    protocol, text = load_protocol(PROTOCOL)
    qdac = "driver: qdac2\n    channels: 24\n    resource: TCPIP::192.168.1.30::5025::SOCKET"
    assert qdac in text
    text = text.replace(qdac, "driver: nidaq_ao\n    resource: Dev1/ao0:3")
    with pytest.raises(InputError, match="driver 'nidaq_ao' has no emulator"):
        emulate.start_emulators(parse_protocol(text))


def test_bench_backend_drives_the_resources_the_protocol_names(tmp_path):
    """--bench on a protocol whose resources are emulators: the same path as a real bench."""
    protocol, text = load_protocol(PROTOCOL)
    emus = emulate.start_emulators(protocol)
    try:
        for name, cfg in protocol.instruments.items():
            text = text.replace(f"resource: {cfg.resource}", f"resource: {emus.resources[name]}")
        backend = open_backend(parse_protocol(text), "bench")
        try:
            assert backend.kind == "bench" and backend.twin is None
            ids = backend.bench.identities()
            assert "MODEL 2450" in ids["k2450"] and "DACADC" in ids["board"]
            backend.bench.write("nudges", np.array([1.0, -1.0, 2.0]))  # model units: 1 uA each
            backend.bench.switch("nudges", True)
            assert emus.emulators["k2450"].output_state()["on"].all()
            assert backend.bench.safe_state() == []
        finally:
            backend.close()
    finally:
        emus.stop()
    for name in ("smu", "k2450"):
        state = emus.emulators[name].output_state()
        assert not state["on"].any() and not state["level"].any()

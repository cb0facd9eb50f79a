"""Transports through the emulators: real sockets (pyvisa-py) and a real pty (pyserial)."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from aeqlab.errors import InstrumentError
from drivers.base import DriverSettings
from drivers.keysight_344xx import Keysight344xx
from drivers.qdac2 import QDac2
from drivers.scpi import ScpiLink
from drivers.serial_board import SerialBoard

TIMEOUT = 0.25


def commands(emu) -> list[str]:
    return [r.command for r in emu.log]


def test_emulators_listen_on_loopback_only(emulator):
    emu = emulator("keysight_344xx")
    assert emu._server.server_address[0] == "127.0.0.1"
    assert emu.resource.startswith("TCPIP::127.0.0.1::")


def test_timeout_then_stale_reply_recovery(emulator):
    emu = emulator("qdac2")
    q = QDac2.open("qdac", DriverSettings(resource=emu.resource, timeout=TIMEOUT, channels=4))
    q.write([0, 1], [0.5, -0.75])
    emu.delay_next(TIMEOUT * 1.6)  # the reply comes after the driver gave up: a stale reply
    assert q.link.query_floats(":sour1:volt?", 1)[0] == 0.5
    # the stream is back in step: the next query gets its own answer, not a leftover
    assert q.link.query_floats(":sour2:volt?", 1)[0] == -0.75
    log = commands(emu)
    i = log.index("*IDN?", 1)  # re-identified after the timeout
    assert log[i - 1] == ":sour1:volt?" and log[i + 1] == ":sour1:volt?"
    q.close()


def test_second_timeout_in_a_row_is_a_fault(emulator):
    emu = emulator("keysight_344xx")
    d = Keysight344xx.open("dmm", DriverSettings(resource=emu.resource, timeout=TIMEOUT))
    d.read([0])
    emu.drop_next()
    emu.drop_next()
    with pytest.raises(InstrumentError, match="dmm: no reply to"):
        d.read([0])
    d.close()


def test_refused_connection_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(InstrumentError, match=r"dmm: cannot talk to TCPIP::127.0.0.1::\d+::SOCKET: .*refused"):
        Keysight344xx.open("dmm", DriverSettings(resource=f"TCPIP::127.0.0.1::{port}::SOCKET", timeout=TIMEOUT))


def test_server_hang_up_is_an_instrument_error(emulator):
    emu = emulator("keysight_344xx")
    d = Keysight344xx.open("dmm", DriverSettings(resource=emu.resource, timeout=TIMEOUT))
    d.read([0])
    emu.hang_up()
    with pytest.raises(InstrumentError, match="dmm: "):
        d.read([0])
    d.close()


def garble_next(emu, command: str, reply: str, times: int) -> None:
    """The next ``times`` replies to ``command`` come back as ``reply`` (other replies untouched)."""
    handle, left = emu.handle_line, [times]

    def handle_line(line: str):
        if line == command and left[0] > 0:
            left[0] -= 1
            emu.garbage_next(reply)
        return handle(line)

    emu.handle_line = handle_line


@pytest.mark.parametrize(("reply", "message"), [("hello", "not numbers"), ("12.5", "outside the range")])
def test_garbage_and_out_of_range_replies(emulator, reply, message):
    emu = emulator("keysight_344xx")
    d = Keysight344xx.open("dmm", DriverSettings(resource=emu.resource, timeout=TIMEOUT))
    d.read([0])
    emu.garbage_next(reply)
    if message == "not numbers":
        assert d.read([0])[0] == 0.0  # one garbled reply is retried (like a timeout) and recovered
        garble_next(emu, "READ?", reply, 2)
        message += ".*twice in a row"
    with pytest.raises(InstrumentError, match=message):
        d.read([0])
    assert d.read([0])[0] == 0.0  # the link is still in step
    d.close()


def test_wrong_instrument_at_the_address(emulator):
    emu = emulator("keithley2450")
    with pytest.raises(InstrumentError, match="not a 34465A or 34461A"):
        Keysight344xx.open("dmm", DriverSettings(resource=emu.resource, timeout=TIMEOUT))


def test_emulator_queues_scpi_errors(emulator):
    emu = emulator("qdac2")
    link = ScpiLink.open("qdac", emu.resource, expect=("QDAC-II",), timeout=TIMEOUT)
    link.query(":sour1:volt 99;*OPC?")  # out of range: refused, queued
    with pytest.raises(InstrumentError, match="Data out of range"):
        link.check_errors("a set")
    link.close()


def test_serial_board_over_a_pty(emulator):
    emu = emulator("serial_board")
    b = SerialBoard.open("board", DriverSettings(resource=emu.resource, timeout=TIMEOUT))
    assert (b.n_dac, b.n_adc) == (4, 4)
    b.write([0, 2], [1.5, -2.0])
    np.testing.assert_allclose(emu.dac, [1.5, 0, -2.0, 0])
    np.testing.assert_allclose(b.read([4, 5, 6, 7]), 0.0)
    emu.delay_next(TIMEOUT * 1.6)
    np.testing.assert_allclose(b.read([4]), [0.0])  # recovered from a late reply
    emu.garbage_next("1,2,3")
    np.testing.assert_allclose(b.read([4]), [0.0])  # a garbled reply is retried once
    garble_next(emu, "GETM_ADC 0", "1,2,3", 2)
    with pytest.raises(InstrumentError, match="is not 1 finite numbers.*twice in a row"):
        b.read([4])
    with pytest.raises(InstrumentError, match="ERR 1 unknown command"):
        b.link.query("FOO 1")
    with pytest.raises(InstrumentError, match="ERR 3 channel out of range"):
        b.link.query("SET 9 0.1")
    assert b.safe_state() == []
    np.testing.assert_allclose(emu.dac, 0.0)
    b.close()
    # the emulator keeps serving after its client went away (no EIO on the pty)
    b = SerialBoard.open("board", DriverSettings(resource=emu.resource, timeout=TIMEOUT))
    assert "DACADC" in b.identify()
    b.close()


def test_serial_board_wrong_channel_count_is_refused(emulator):
    emu = emulator("serial_board")
    with pytest.raises(InstrumentError, match="reports 4 DAC channels, the protocol expects 160"):
        SerialBoard.open("board", DriverSettings(resource=emu.resource, options={"dac_channels": 160}))


def test_missing_serial_port_is_a_clear_error(tmp_path):
    with pytest.raises(InstrumentError, match="cannot open serial port"):
        SerialBoard.open("board", DriverSettings(resource=str(tmp_path / "ttyNONE")))

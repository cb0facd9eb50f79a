"""Emulated instruments over a twin: the real drivers talk to them over real transports.

SCPI instruments are served on loopback TCP (``TCPIP::127.0.0.1::PORT::SOCKET``), the
serial DAC/ADC board on a pseudo-terminal. Each emulated channel is wired to one twin
port element with a true SI transfer (as :class:`sim_backends.instruments.SimInstrument`
is), and every command received is logged.
"""

from sim_backends.emulators.dmm import Keysight344xxEmulator
from sim_backends.emulators.qdac import QDac2Emulator
from sim_backends.emulators.scpi_server import CommandRecord, ScpiEmulator
from sim_backends.emulators.serial_board import SerialBoardEmulator
from sim_backends.emulators.smu import B2900Emulator, Keithley2400Emulator, Keithley2450Emulator
from sim_backends.emulators.wiring import TwinChannels

EMULATORS = {
    "keithley2450": Keithley2450Emulator,
    "keithley2400": Keithley2400Emulator,
    "keysight_b2900": B2900Emulator,
    "keysight_344xx": Keysight344xxEmulator,
    "qdac2": QDac2Emulator,
    "serial_board": SerialBoardEmulator,
}

__all__ = [
    "EMULATORS",
    "B2900Emulator",
    "CommandRecord",
    "Keithley2400Emulator",
    "Keithley2450Emulator",
    "Keysight344xxEmulator",
    "QDac2Emulator",
    "ScpiEmulator",
    "SerialBoardEmulator",
    "TwinChannels",
]

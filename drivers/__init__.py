"""Instrument capabilities and drivers.

The engine talks to a bench only through the small capability Protocols defined in
:mod:`drivers.capabilities`. Real drivers (pyvisa, pyserial, nidaqmx) and the
simulated instruments of :mod:`sim_backends` implement them alike.
"""

from drivers.capabilities import (
    AnalogInput,
    AnalogOutput,
    Clock,
    CurrentSource,
    Instrument,
    WallClock,
)
from drivers.limits import LimitTable

__all__ = [
    "AnalogInput",
    "AnalogOutput",
    "Clock",
    "CurrentSource",
    "Instrument",
    "LimitTable",
    "WallClock",
]

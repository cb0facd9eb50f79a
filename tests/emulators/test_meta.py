"""Every registered driver declares limits and passes identify and safe_state against its emulator."""

from __future__ import annotations

from unittest import mock

import nidaqmx._base_interpreter
import numpy as np
import pytest
from nidaqmx.constants import ChannelType

from drivers import registry
from drivers.base import DriverSettings
from drivers.limits import LimitTable
from sim_backends.emulators import EMULATORS

MODEL = {
    "keithley2450": "2450",
    "keithley2400": "2400",
    "keysight_b2900": "B2902A",
    "keysight_344xx": "34465A",
    "qdac2": "QDAC-II",
    "serial_board": "DACADC",
}


def tables(obj) -> list[LimitTable]:
    found = [getattr(obj, a, None) for a in ("output_limits", "current_limits", "input_limits")]
    return [t for t in found if isinstance(t, LimitTable)]


def make_busy(obj, driver: str) -> None:
    """Leave a source away from zero (and on), so that safe_state has work to do."""
    if hasattr(obj, "set_currents") and obj.options.source == "current":
        n = obj.n_channels
        obj.set_currents(np.arange(n), np.full(n, 1e-6))
        obj.enable(np.arange(n), True)
    elif driver in ("qdac2", "serial_board", "nidaq_ao"):
        obj.write([0, 1], [0.25, -0.5])


@pytest.mark.parametrize("driver", registry.names())
def test_driver_limits_identify_safe_state(driver, emulator):
    if driver not in EMULATORS:
        return _nidaq(driver)
    emu = emulator(driver)
    cls = registry.get(driver)
    obj = cls.open("dev", DriverSettings(resource=emu.resource, timeout=1.0))
    try:
        assert tables(obj), f"{driver} declares no LimitTable"
        assert MODEL[driver] in obj.identify()
        make_busy(obj, driver)
        obj.safe_state()
        state = emu.output_state()
        np.testing.assert_array_equal(state["level"], 0.0)
        if driver in ("keithley2450", "keithley2400", "keysight_b2900"):
            assert not state["on"].any()
            assert all(c.off_mode in ("HIMP", "HIZ") for c in emu.ch)
    finally:
        obj.close()


def _nidaq(driver: str) -> None:
    fake = mock.create_autospec(nidaqmx._base_interpreter.BaseInterpreter)
    fake.create_task.return_value = (mock.sentinel.task, True)
    kind = "ao" if driver == "nidaq_ao" else "ai"
    fake.get_task_attribute_string.return_value = f"Dev1/{kind}0:3"
    fake.get_chan_attribute_int32.return_value = ChannelType.ANALOG_OUTPUT.value
    fake.write_analog_f64.return_value = 1
    with mock.patch("nidaqmx.utils._select_interpreter", return_value=fake):
        obj = registry.get(driver).open("dev", DriverSettings(resource=f"Dev1/{kind}0:3"))
        assert tables(obj)
        assert "NI-DAQmx" in obj.identify()
        make_busy(obj, driver)
        obj.safe_state()
        if driver == "nidaq_ao":
            np.testing.assert_array_equal(fake.write_analog_f64.call_args.args[5], 0.0)
        obj.close()

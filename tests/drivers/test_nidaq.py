"""The NI-DAQ adapter against a fake at nidaqmx's interpreter boundary (private API, nidaqmx<1.8)."""

from __future__ import annotations

from unittest import mock

import nidaqmx
import nidaqmx._base_interpreter
import nidaqmx.errors
import numpy as np
import pytest
from nidaqmx.constants import ChannelType, UsageTypeAI

from aeqlab.errors import InputError, InstrumentError, LimitError
from drivers.base import DriverSettings
from drivers.nidaq import NidaqAnalogInput, NidaqAnalogOutput, count_channels


@pytest.fixture
def interp():
    fake = mock.create_autospec(nidaqmx._base_interpreter.BaseInterpreter)
    fake.create_task.return_value = (mock.sentinel.task, True)
    with mock.patch("nidaqmx.utils._select_interpreter", return_value=fake):
        yield fake


def test_count_channels():
    assert count_channels("Dev1/ao0:7", "ao") == 8
    assert count_channels("Dev1/ai0:3, Dev2/ai5", "ai") == 5
    with pytest.raises(InputError):
        count_channels("Dev1/ai0:3", "ao")


def test_ao_one_task_all_channels_written_together(interp):
    interp.get_task_attribute_string.return_value = "Dev1/ao0:7"
    interp.get_chan_attribute_int32.return_value = ChannelType.ANALOG_OUTPUT.value
    interp.write_analog_f64.return_value = 1
    ao = NidaqAnalogOutput.open("dac", DriverSettings(resource="Dev1/ao0:7", voltage_range=(-5.0, 5.0)))
    interp.create_ao_voltage_chan.assert_called_once()
    args = interp.create_ao_voltage_chan.call_args.args
    assert args[1] == "Dev1/ao0:7" and args[3:5] == (-5.0, 5.0)
    interp.write_analog_f64.assert_not_called()  # connecting changes nothing
    ao.write([1, 3], [0.5, -1.0])
    sent = interp.write_analog_f64.call_args.args
    assert sent[1] == 1 and sent[2] is True  # one sample per channel, auto-start
    np.testing.assert_allclose(sent[5], [0, 0.5, 0, -1, 0, 0, 0, 0])
    with pytest.raises(LimitError):
        ao.write([0], [6.0])
    assert interp.write_analog_f64.call_count == 1
    ao.safe_state()
    np.testing.assert_allclose(interp.write_analog_f64.call_args.args[5], np.zeros(8))
    ao.close()


def test_ai_reads_every_channel_and_returns_those_asked(interp):
    interp.get_task_attribute_string.return_value = "Dev1/ai0:3"
    interp.get_read_attribute_string.return_value = "Dev1/ai0:3"
    interp.get_read_attribute_uint32.return_value = 4
    interp.get_chan_attribute_int32.side_effect = lambda task, chan, attr: (
        ChannelType.ANALOG_INPUT.value if attr == 0x187F else UsageTypeAI.VOLTAGE.value
    )

    def fill(task, n, timeout, mode, array):
        array[:] = [0.1, 0.2, 0.3, 0.4]
        return array, 1

    interp.read_analog_f64.side_effect = fill
    ai = NidaqAnalogInput.open("adc", DriverSettings(resource="Dev1/ai0:3", options={"terminal": "rse"}))
    args = interp.create_ai_voltage_chan.call_args.args
    assert args[1] == "Dev1/ai0:3" and args[4:6] == (-10.0, 10.0)
    np.testing.assert_allclose(ai.read([1, 2]), [0.2, 0.3])
    ai.close()


def test_daq_not_found_is_a_clear_error():
    with mock.patch(
        "nidaqmx.utils._select_interpreter", side_effect=nidaqmx.errors.DaqNotFoundError("Could not find NI-DAQmx")
    ):
        with pytest.raises(InstrumentError, match="NI-DAQmx is not installed"):
            NidaqAnalogOutput.open("dac", DriverSettings(resource="Dev1/ao0:1"))


def test_daq_error_names_its_code(interp):
    interp.create_ao_voltage_chan.side_effect = nidaqmx.errors.DaqError("Device identifier is invalid.", -200220)
    with pytest.raises(InstrumentError, match="dac: NI-DAQmx error -200220 while adding Dev9/ao0"):
        NidaqAnalogOutput.open("dac", DriverSettings(resource="Dev9/ao0"))
    interp.clear_task.assert_called()


def test_ao_range_beyond_what_the_device_reports_is_refused_at_connect(interp):
    interp.get_device_attribute_double_array.return_value = [-5.0, 5.0, -10.0, 10.0]  # the device's AO ranges
    with pytest.raises(InstrumentError, match=r"voltage_range \[-500, 500\] V exceeds what Dev1 offers .*\[-10, 10\]"):
        NidaqAnalogOutput.open("dac", DriverSettings(resource="Dev1/ao0:1", voltage_range=(-500.0, 500.0)))
    interp.create_task.assert_not_called()  # refused before any task exists
    with pytest.raises(InstrumentError, match="exceeds what Dev1 offers on its AI"):
        NidaqAnalogInput.open("adc", DriverSettings(resource="Dev1/ai0", voltage_range=(-20.0, 20.0)))


def test_ao_slew_and_safe_state_through_the_guard(interp):
    interp.get_device_attribute_double_array.return_value = [-10.0, 10.0]
    interp.get_task_attribute_string.return_value = "Dev1/ao0:1"
    interp.get_chan_attribute_int32.return_value = ChannelType.ANALOG_OUTPUT.value
    interp.write_analog_f64.return_value = 1
    from drivers.base import Ramp

    ao = NidaqAnalogOutput.open("dac", DriverSettings(resource="Dev1/ao0:1", ramp=Ramp(step=0.25, rate=1e6)))
    ao.write([1], [1.0])
    sent = [list(c.args[5]) for c in interp.write_analog_f64.call_args_list]
    assert sent == [[0, 0.25], [0, 0.5], [0, 0.75], [0, 1.0]]
    assert ao.safe_state() == []  # confirmed: NI-DAQmx accepted every write
    assert list(interp.write_analog_f64.call_args.args[5]) == [0, 0]

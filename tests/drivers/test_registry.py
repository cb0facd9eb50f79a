"""The driver registry: our drivers, third-party entry points, declared options."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from pydantic import BaseModel

from aeqlab.errors import InputError
from drivers import registry

OURS = {"keithley2450", "keithley2400", "keysight_b2900", "keysight_344xx", "qdac2", "serial_board", "nidaq_ao"}


def test_our_drivers_are_registered_and_declare_options():
    assert OURS <= set(registry.names())
    for name in registry.names():
        cls = registry.get(name)
        assert hasattr(cls, "open"), name
        model = registry.options_model(name)
        assert model is not None and issubclass(model, BaseModel), name
        model.model_validate({})  # every option has a default
    assert registry.options_model("sim") is None
    assert "nplc" in registry.options_model("keysight_344xx").model_json_schema()["properties"]


def test_unknown_driver_is_a_clear_error():
    with pytest.raises(InputError, match="unknown driver 'k9999'.*use 'sim' or one of"):
        registry.get("k9999")


def test_third_party_driver_through_the_entry_point_group(monkeypatch):
    ep = EntryPoint("acme_dac", "collections:OrderedDict", registry.GROUP)
    broken = EntryPoint("acme_broken", "no_such_module_xyz:Driver", registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep, broken] if group == registry.GROUP else [])
    assert "acme_dac" in registry.names()
    from collections import OrderedDict

    assert registry.get("acme_dac") is OrderedDict
    assert registry.options_model("acme_dac") is None
    with pytest.raises(InputError, match="cannot be loaded"):
        registry.get("acme_broken")


@pytest.mark.parametrize(
    ("name", "voltage", "current"),
    [
        ("keithley2450", (-210.0, 210.0), (-1.05, 1.05)),
        ("keithley2400", (-210.0, 210.0), (-1.05, 1.05)),
        ("keysight_b2900", (-210.0, 210.0), (-3.03, 3.03)),
        ("keysight_344xx", (-1000.0, 1000.0), None),
        ("qdac2", (-10.0, 10.0), None),
        ("serial_board", (-10.0, 10.0), None),
    ],
)
def test_hardware_ranges_per_model_family_cite_their_source(name, voltage, current):
    rng = registry.hardware_range(name)
    assert rng is not None and rng.voltage == voltage and rng.current == current
    assert rng.source
    assert rng.excess("voltage", *voltage) is None
    assert "exceeds the hardware" in (rng.excess("voltage", voltage[0], voltage[1] * 2) or "")


def test_hardware_range_is_none_where_the_device_decides():
    assert registry.hardware_range("nidaq_ao") is None  # checked at connect against the device
    assert registry.hardware_range("sim") is None

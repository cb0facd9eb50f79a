"""Every example protocol and template validates, against the model and against the schema."""

from __future__ import annotations

import json

import jsonschema
import pytest
from helpers import EXAMPLES, PROTOCOLS, SCHEMA_LINE, TEMPLATES
from ruamel.yaml import YAML

from aeqlab.protocol import Protocol, load_protocol
from aeqlab.protocol.schema import protocol_schema, schema_text

ALL = EXAMPLES + TEMPLATES


def test_there_are_examples_and_templates():
    assert len(EXAMPLES) >= 3 and len(TEMPLATES) == 3


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_validates_and_keeps_its_text(path):
    protocol, text = load_protocol(path)
    assert isinstance(protocol, Protocol)
    assert text == path.read_text(encoding="utf-8")  # nothing extended: the file itself is what runs
    assert text.splitlines()[0] == SCHEMA_LINE


def test_checked_in_schema_is_current():
    checked_in = (PROTOCOLS / "aeqlab.schema.json").read_text(encoding="utf-8")
    assert checked_in == schema_text(), "protocols/aeqlab.schema.json is stale: run 'aeqlab schema -o' to refresh it"


def test_schema_is_draft_2020_12_and_itself_valid():
    schema = protocol_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_validates_against_the_json_schema(path):
    data = json.loads(json.dumps(YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))))
    errors = list(jsonschema.Draft202012Validator(protocol_schema()).iter_errors(data))
    assert errors == [], [e.message for e in errors]


def test_the_json_schema_rejects_what_the_model_rejects():
    data = YAML(typ="safe", pure=True).load((PROTOCOLS / "xor_hopfield_sim.yaml").read_text(encoding="utf-8"))
    data["roles"]["inputs"]["lmits"] = {"low": -1, "high": 1}
    data["instruments"]["dac"]["driver"] = "nosuch"
    messages = [e.message for e in jsonschema.Draft202012Validator(protocol_schema()).iter_errors(data)]
    assert any("lmits" in m for m in messages) and any("nosuch" in m for m in messages)


def _leaves(schema: dict):
    defs = schema["$defs"]
    yield "protocol", schema
    for name, d in defs.items():
        for key, prop in d.get("properties", {}).items():
            yield f"{name}.{key}", prop


def test_every_field_has_a_description_and_every_number_a_unit():
    schema = protocol_schema()
    missing_description, missing_unit = [], []
    for name, prop in _leaves(schema):
        if name.startswith("DriverOptions") or name == "protocol":
            continue
        if not prop.get("description"):
            missing_description.append(name)
        text = json.dumps(prop)
        numeric = '"number"' in text or '"integer"' in text
        if numeric and "x-unit" not in prop:
            missing_unit.append(name)
    assert missing_description == [] and missing_unit == []


def test_a_file_that_extends_a_base_may_omit_required_sections():
    validator = jsonschema.Draft202012Validator(protocol_schema())
    assert list(validator.iter_errors({"extends": "base.yaml", "name": "child"})) == []
    assert any("required" in e.message for e in validator.iter_errors({"name": "alone"}))

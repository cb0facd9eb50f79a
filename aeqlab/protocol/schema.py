"""The protocol's JSON Schema (draft 2020-12), for editors and for ``aeqlab schema``.

Built from the pydantic model, plus what pydantic cannot say by itself: the
``settle`` shorthand (a plain wait), the driver names of the registry, and each
driver's own ``options`` model, collected from the drivers that declare one.
"""

from __future__ import annotations

import json
from typing import Any

from aeqlab.protocol.document import Protocol

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _drivers() -> list[tuple[str, dict | None]]:
    """(name, options schema or None) of every registered driver."""
    try:
        from drivers import registry
    except ImportError:
        return []
    out = []
    for name in registry.names():
        try:
            model = registry.options_model(name)
        except Exception:  # noqa: BLE001 - a driver whose package is missing declares nothing here
            model = None
        out.append((name, model.model_json_schema() if model is not None else None))
    return out


def protocol_schema() -> dict[str, Any]:
    """The JSON Schema of a protocol file."""
    schema = Protocol.model_json_schema(mode="validation")
    defs = schema.setdefault("$defs", {})
    # settle: a wait such as '1 ms' is short for {mode: fixed, time: '1 ms'}
    settle = defs["Method"]["properties"]["settle"]
    time_schema = defs["SettleFixed"]["properties"]["time"]
    union = {k: settle.pop(k) for k in ("oneOf", "discriminator") if k in settle}
    settle["anyOf"] = [*time_schema["anyOf"], union] if union else time_schema["anyOf"]
    settle["x-unit"] = "s"
    # drivers: the registry's names, and each one's options
    inst = defs["InstrumentConfig"]
    drivers = _drivers()
    names = ["sim", *(n for n, _ in drivers)]
    inst["properties"]["driver"]["enum"] = names
    rules = [
        {
            "if": {"properties": {"driver": {"const": "sim"}}, "required": ["driver"]},
            "then": {"properties": {"options": {"type": "object", "maxProperties": 0}}},
        }
    ]
    for name, opts in drivers:
        if opts is None:
            continue
        sub_defs = opts.pop("$defs", {})
        defs.update(sub_defs)
        key = f"DriverOptions_{name}"
        defs[key] = opts
        rules.append(
            {
                "if": {"properties": {"driver": {"const": name}}, "required": ["driver"]},
                "then": {"properties": {"options": {"$ref": f"#/$defs/{key}"}}},
            }
        )
    inst["allOf"] = rules
    # a file that extends a base may leave any required section to the base
    required = schema.pop("required", [])
    schema["if"] = {"required": ["extends"]}
    schema["else"] = {"required": required}
    return {"$schema": DIALECT, "$id": "aeqlab.schema.json", **schema}


def schema_text() -> str:
    """The schema as the text ``aeqlab schema`` writes (and ``protocols/aeqlab.schema.json`` holds)."""
    return json.dumps(protocol_schema(), indent=2, ensure_ascii=False) + "\n"

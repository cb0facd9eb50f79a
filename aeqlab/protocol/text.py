"""A protocol's text: the file as written when it was loaded, or a canonical YAML text of the model.

A run folder keeps the protocol it ran as text (and its SHA-256). A protocol loaded from
a file keeps that file's text; one built from a dict (``Protocol.model_validate``), or
changed since it was loaded (``model_copy(update=...)``), gets a canonical YAML text that
validates back to an equal protocol.
"""

from __future__ import annotations

import hashlib
import io
import json

from ruamel.yaml import YAML

from aeqlab.protocol.document import Protocol


def _digest(protocol: Protocol) -> str:
    return hashlib.sha256(json.dumps(protocol.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def attach_source(protocol: Protocol, text: str, path: str | None) -> Protocol:
    """Remember the text (and file) a protocol was loaded from."""
    protocol._source_text = text
    protocol._source_path = path
    protocol._source_digest = _digest(protocol)
    return protocol


def canonical_text(protocol: Protocol) -> str:
    """A YAML text of the whole model (every field, SI values, resolved paths), keys in model order."""
    data = protocol.model_dump(mode="json", by_alias=True)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # keep the model's order
    buf = io.StringIO()
    buf.write(f"# protocol {protocol.name}: canonical text written by aeqlab (values in SI units)\n")
    yaml.dump(data, buf)
    return buf.getvalue()


def source_of(protocol: Protocol) -> tuple[str, str | None]:
    """(text, path) to store for ``protocol``: its file's text while it is unchanged, else the canonical text."""
    if protocol._source_text is not None and protocol._source_digest == _digest(protocol):
        return protocol._source_text, protocol._source_path
    return canonical_text(protocol), None

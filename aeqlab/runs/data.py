"""The data a run trained on, kept in its folder: resuming on the copy, refusing an altered one."""

from __future__ import annotations

from pathlib import Path

from aeqlab.datasets import Split
from aeqlab.errors import InputError
from aeqlab.journal import Header
from aeqlab.runs.store import RunStore, file_sha256, split_sha256


def protocol_with_kept_data(folder: Path, header: Header, source: Path, changed: list[str], text: str | None = None):
    """The protocol of the run in ``folder``, its data path pointed at the folder's copy (checked against its SHA-256).

    The protocol is ``source``'s text, or ``text`` (named as ``source``) when given."""
    from aeqlab.protocol import load_protocol, parse_protocol

    kept = header.extra.get("data") or {}
    if "file" not in kept or changed:  # built-in data, a run from before data travelled, or a forced new protocol
        if text is not None:
            return parse_protocol(text, str(source)), text
        return load_protocol(source)
    copy = Path(folder) / kept["file"]
    if not copy.is_file():
        raise InputError(
            "the run folder's copy of its data is missing",
            where=str(copy),
            hint=f"restore it: SHA-256 {kept['sha256'][:12]}…, copied from {kept.get('source', '?')}",
        )
    found = file_sha256(copy)
    if found != kept["sha256"]:
        raise InputError(
            f"the run folder's copy of its data was altered (SHA-256 {found[:12]}… is not the run's "
            f"{kept['sha256'][:12]}…)",
            where=str(copy),
            hint="restore the file the run trained on, or start a new run",
        )
    text = source.read_text(encoding="utf-8") if text is None else text
    return parse_protocol(_with_data_path(text, str(copy.resolve())), str(source)), text


def _with_data_path(text: str, path: str) -> str:
    """The protocol text with ``dataset.path`` replaced (comments and layout kept)."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    doc = yaml.load(text)
    doc["dataset"]["path"] = path
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue()


def check_split(header: Header, data: Split, store: RunStore) -> None:
    """Refuse to resume on data that is not what the run trained on (a changed file or data set)."""
    expected = (header.extra.get("data") or {}).get("split_sha256")
    if expected is not None and split_sha256(data) != expected:
        raise InputError(
            "the data differ from those the run trained on (the split's SHA-256 changed)",
            where=str(store.path),
            hint="resume with the same data and aeqlab version, or start a new run",
        )

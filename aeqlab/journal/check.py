"""Refusing a damaged journal in one line before anything writes to it (checked on a copy)."""

from __future__ import annotations

import shutil
import sqlite3
import struct
import tempfile
from pathlib import Path

from aeqlab.errors import InputError
from aeqlab.journal.schema import FILE, FORMAT, OPTIONAL_TABLES, TABLES


def bad(path: Path, what: str, hint: str) -> InputError:
    return InputError(what, where=str(path), hint=hint)


def check_file(path: Path) -> None:
    """Refuse a journal that is missing, not SQLite, truncated or corrupt (checked on a copy)."""
    if not path.is_file():
        raise bad(
            path.parent,
            f"not a run folder (no {FILE})",
            "give a folder made by 'aeqlab run'; 'aeqlab runs DIR' lists them",
        )
    keep = "the file is left untouched; start a new run or restore the file from a backup"
    with open(path, "rb") as fh:
        head = fh.read(100)
    size = path.stat().st_size
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        raise bad(path, "not an SQLite journal (bad or missing file header)", keep)
    page = struct.unpack(">H", head[16:18])[0]
    page = 65536 if page == 1 else page
    pages, counter, valid_for = struct.unpack(">I", head[28:32])[0], head[24:28], head[92:96]
    wal = path.with_name(path.name + "-wal")
    in_wal = wal.is_file() and wal.stat().st_size > 0  # committed pages not yet folded into the file (a disk full)
    if size % page or (counter == valid_for and size < pages * page and not in_wal):
        raise bad(path, f"the journal is truncated ({size} bytes, expected {pages * page})", keep)
    with tempfile.TemporaryDirectory(prefix="aeqlab-check-") as tmp:
        copy = Path(tmp) / FILE
        try:
            shutil.copyfile(path, copy)
            if wal.exists():
                shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        except OSError as exc:
            what = f"cannot check the journal: copying it failed ({exc.strerror})"
            raise bad(path, what, "free some space") from None
        try:
            con = sqlite3.connect(copy)
            try:
                result = con.execute("PRAGMA quick_check").fetchone()[0]
                names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                rows = con.execute("SELECT format FROM header").fetchall() if "header" in names else []
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            raise bad(path, f"the journal is corrupt ({exc})", keep) from None
    if result != "ok":
        raise bad(path, f"the journal is corrupt (integrity check: {result})", keep)
    missing = [t for t in TABLES if t not in names and t not in OPTIONAL_TABLES]
    if missing or len(rows) != 1:
        raise bad(path, f"not an aeqlab journal (missing {', '.join(missing) or 'header row'})", keep)
    if rows[0][0] != FORMAT:
        raise bad(path, f"journal format {rows[0][0]} is not the supported {FORMAT}", "use a matching aeqlab")

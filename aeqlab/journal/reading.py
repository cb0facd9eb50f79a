"""Opening a journal for reading without writing anything next to it.

SQLite in WAL mode makes even a read-only connection (``mode=ro``) create the ``-wal``
and ``-shm`` files beside the journal when they are missing; in a folder that cannot be
written (a read-only mount, an archive, another user's run) that open fails. A journal
in such a folder is opened ``immutable`` instead: nothing can be writing it, so SQLite
may skip locking and the shared-memory index, and it touches no file. When a crash left
committed pages in a non-empty ``-wal``, SQLite can still read them through the
existing ``-shm`` in ``mode=ro``; that is tried first, and ``immutable`` is the fallback.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote


def folder_writable(folder: str | Path) -> bool:
    """Whether this process may create files in ``folder`` (False on a read-only mount, even for root)."""
    return os.access(folder, os.W_OK)


def _uri(path: Path, immutable: bool) -> str:
    return f"file:{quote(str(path))}?mode=ro" + ("&immutable=1" if immutable else "")


def connect_reader(path: str | Path, **kwargs) -> sqlite3.Connection:
    """A read-only connection to the journal at ``path``; writes nothing in a read-only folder."""
    path = Path(path)
    if folder_writable(path.parent):
        return sqlite3.connect(_uri(path, False), uri=True, **kwargs)
    wal = path.with_name(path.name + "-wal")
    shm = path.with_name(path.name + "-shm")
    if wal.is_file() and wal.stat().st_size > 0 and shm.is_file():
        try:
            con = sqlite3.connect(_uri(path, False), uri=True, **kwargs)
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return con
        except sqlite3.Error:
            pass
    return sqlite3.connect(_uri(path, True), uri=True, **kwargs)

"""A full disk or a failing journal write stops the run safely, and the run resumes once space is back."""

from __future__ import annotations

import os
import stat

import pytest
import runhelpers
from runhelpers import copy_protocol, resume_inprocess, run_inprocess, table

from aeqlab.journal import Journal
from aeqlab.runs.summary import exit_code


@pytest.fixture
def disk_fills_at(monkeypatch):
    """The journal's file may not grow past its size at the given sample (SQLite's own limit, a full disk)."""

    def install(seq: int):
        real = Journal.record_sample

        def record(self, row, checkpoint, snapshot=None):
            if row["seq"] == seq:
                pages = self.con.execute("PRAGMA page_count").fetchone()[0]
                self.con.execute(f"PRAGMA max_page_count = {pages}")
            return real(self, row, checkpoint, snapshot)

        monkeypatch.setattr(Journal, "record_sample", record)
        return lambda: monkeypatch.setattr(Journal, "record_sample", real)

    return install


def test_a_full_disk_stops_the_run_safely_and_it_resumes_when_space_is_back(tmp_path, disk_fills_at, reference):
    runhelpers.OPENED.clear()
    space_back = disk_fills_at(5)
    failed = run_inprocess(copy_protocol(tmp_path), tmp_path / "runs")
    assert failed["status"] == "failed" and exit_code(failed) == 1
    assert "the journal cannot be written: database or disk is full" in failed["error"]
    assert "aeqlab resume" in failed["error"] and "\n" not in failed["error"]
    assert failed["safe_state"] == "safe"
    for inst in runhelpers.OPENED[-1].bench.instruments.values():
        assert not inst.output_state()["on"].any()
    committed = len(table(f"{failed['run_dir']}/journal.sqlite", "samples", "seq"))
    assert committed >= 5
    space_back()
    done = resume_inprocess(failed["run_dir"])
    assert done["status"] == "completed", done.get("error")
    assert done["params_sha256"] == reference[1]["params_sha256"]


def test_the_check_accepts_a_journal_whose_committed_pages_are_still_in_the_wal(tmp_path, reference):
    """After a disk full, the file's header can count pages that only the WAL holds: SQLite reads it whole."""
    import shutil
    import sqlite3
    import struct

    from aeqlab.journal.check import check_file

    work = tmp_path / "work.sqlite"
    shutil.copyfile(reference[0] / "journal.sqlite", work)
    con = sqlite3.connect(work, isolation_level=None)
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("UPDATE sessions SET error = ? WHERE id = 1", ("x" * 50_000,))  # new pages, in the WAL only
    crashed = tmp_path / "run" / "journal.sqlite"
    crashed.parent.mkdir()
    shutil.copyfile(work, crashed)  # as a crash leaves them: the file and its WAL
    shutil.copyfile(work.with_name("work.sqlite-wal"), crashed.with_name("journal.sqlite-wal"))
    con.close()
    data = bytearray(crashed.read_bytes())
    pages = struct.unpack(">I", data[28:32])[0]
    data[28:32] = struct.pack(">I", pages + 4)  # a checkpoint that counted pages it could not write
    crashed.write_bytes(bytes(data))
    check_file(crashed)  # no "truncated" refusal
    reader = sqlite3.connect(crashed)
    assert reader.execute("SELECT count(*) FROM samples").fetchone()[0] == reference[1]["samples"]
    reader.close()


def test_export_of_a_read_only_run_folder_writes_elsewhere_and_says_where(tmp_path, monkeypatch, capsys, reference):
    from aeqlab.cli import main

    run_dir = reference[0]
    monkeypatch.chdir(tmp_path)
    real = os.access
    # the folder as a non-root user would find it read-only (root writes anywhere)
    monkeypatch.setattr(
        os, "access", lambda path, mode: not (mode & os.W_OK and str(path) == str(run_dir)) and real(path, mode)
    )
    with pytest.raises(SystemExit) as done:
        main(["export", str(run_dir)])
    out = capsys.readouterr()
    assert done.value.code in (0, None)
    assert "read-only" in out.err and str(tmp_path / f"{run_dir.name}-export") in out.err
    assert (tmp_path / f"{run_dir.name}-export" / "samples.csv").is_file()
    assert stat.S_ISDIR(os.stat(run_dir).st_mode)

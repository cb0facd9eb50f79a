"""Bad run folders and journals: one clear line, exit 2, and the file is never written to."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from runhelpers import copy_protocol, run_inprocess, table

from aeqlab.cli import main


def cli(capsys, *args: str) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    return exit_.value.code, capsys.readouterr().err.strip().splitlines()


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def interrupted_run(tmp_path, monkeypatch):
    """A run stopped after a few samples, its journal folded into one file."""
    protocol = copy_protocol(tmp_path)
    summary = run_inprocess(protocol, tmp_path / "runs", hook="stop@900")
    assert summary["status"] == "interrupted"
    return protocol, tmp_path / "runs" / summary["run_dir"].rsplit("/", 1)[-1]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "not sqlite"])
def test_damaged_journal_is_refused_in_one_line_and_left_untouched(capsys, interrupted_run, damage):
    _, run_dir = interrupted_run
    journal = run_dir / "journal.sqlite"
    con = sqlite3.connect(journal)
    page = con.execute("PRAGMA page_size").fetchone()[0]
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'samples'").fetchone()[0]
    con.close()
    data = journal.read_bytes()
    if damage == "truncate":
        journal.write_bytes(data[: len(data) // 2 + 100])
    elif damage == "garbage":  # the samples table's root page overwritten
        start = (root - 1) * page
        journal.write_bytes(data[:start] + b"\xa5" * page + data[start + page :])
    else:
        journal.write_bytes(b"this is not a journal\n" * 10)
    before = digest(journal)
    for command in ("resume", "report", "export"):
        code, lines = cli(capsys, command, str(run_dir))
        assert code == 2 and len(lines) == 1, (command, lines)
        assert str(journal) in lines[0] and "untouched" in lines[0]
        assert digest(journal) == before
        assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith("journal")) == ["journal.sqlite"]


def test_corrupt_checkpoint_is_refused_by_resume_but_samples_stay_readable(capsys, interrupted_run, tmp_path):
    _, run_dir = interrupted_run
    journal = run_dir / "journal.sqlite"
    con = sqlite3.connect(journal)
    (engine,) = con.execute("SELECT engine FROM checkpoint").fetchone()
    flipped = bytearray(engine)
    flipped[len(flipped) // 2] ^= 0x40  # one bit of θ* changed, the file itself still well formed
    con.execute("UPDATE checkpoint SET engine = ?", (bytes(flipped),))
    con.commit()
    con.close()
    before = digest(journal)
    code, lines = cli(capsys, "resume", str(run_dir))
    assert code == 2 and len(lines) == 1 and "checkpoint is corrupt" in lines[0] and str(journal) in lines[0]
    assert digest(journal) == before
    code, _ = cli(capsys, "export", str(run_dir), "-o", str(tmp_path / "csv"))
    assert code == 0 and (tmp_path / "csv" / "samples.csv").stat().st_size > 0


def test_not_a_run_folder(capsys, tmp_path):
    code, lines = cli(capsys, "resume", str(tmp_path))
    assert code == 2 and len(lines) == 1 and "not a run folder" in lines[0] and str(tmp_path) in lines[0]
    code, lines = cli(capsys, "resume", str(tmp_path / "missing"))
    assert code == 2 and len(lines) == 1 and "no such run folder" in lines[0]


def test_changed_protocol_is_refused_unless_forced(capsys, interrupted_run):
    protocol, run_dir = interrupted_run
    protocol.write_text(protocol.read_text().replace("beta: 0.5", "beta: 0.4"))
    before = digest(run_dir / "journal.sqlite")
    code, lines = cli(capsys, "resume", str(run_dir))
    assert code == 2 and len(lines) == 1
    assert "protocol changed" in lines[0] and str(protocol) in lines[0] and "--force" in lines[0]
    assert digest(run_dir / "journal.sqlite") == before
    code, _ = cli(capsys, "resume", str(run_dir), "--force")
    assert code == 0
    sessions = table(run_dir / "journal.sqlite", "sessions", "id")
    assert sessions[-1]["kind"] == "resume --force" and "beta: 0.4" in sessions[-1]["protocol_text"]
    assert "beta: 0.5" in table(run_dir / "journal.sqlite", "header", "id")[0]["protocol_text"]
    code, lines = cli(capsys, "resume", str(run_dir))
    assert code == 2 and "already complete" in lines[0]


def test_a_second_process_cannot_train_in_the_same_folder(capsys, interrupted_run):
    from aeqlab.runs.store import RunStore

    _, run_dir = interrupted_run
    with RunStore.existing(run_dir).lock():
        code, lines = cli(capsys, "resume", str(run_dir))
    assert code == 2 and len(lines) == 1 and "another aeqlab process" in lines[0]

"""Read-only run folders: ``runs``, ``report`` and ``export`` read them and write nothing in them.

The suite runs as root here, and root ignores file permissions: a chmod alone proves
nothing. So the folder is also made read-only the way a read-only mount looks to
every process (``os.access`` says not writable), every SQLite connection is recorded,
and the folder's listing, sizes and mtimes are compared before and after; a write a
real mount would refuse shows up as a change. Where mount namespaces are allowed, the
same commands also run on a real read-only bind mount.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from aeqlab.cli import main


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below ``folder`` (itself included): mode, size and mtime in ns."""
    out = {}
    for path in [folder, *sorted(folder.rglob("*"))]:
        st = path.lstat()
        out[str(path.relative_to(folder))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def chmod_tree(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        base = 0o755 if path.is_dir() else 0o644
        os.chmod(path, base if writable else base & ~0o222)
        assert not stat.S_IMODE(path.lstat().st_mode) & 0o222 or writable


@pytest.fixture
def readonly_run(reference, tmp_path, monkeypatch):
    """A copy of the reference run, chmod'ed read-only and seen read-only through ``os.access``.

    Yields the run folder; also records every SQLite ``connect`` (``readonly_run.connects``).
    Permissions are restored in teardown, and the folder is checked unchanged.
    """
    parent = tmp_path / "archive"
    parent.mkdir()
    run_dir = parent / reference[0].name
    shutil.copytree(reference[0], run_dir)
    assert (run_dir / "journal.sqlite").is_file() and (run_dir / ".lock").is_file()
    yield from _readonly(run_dir, monkeypatch)


def _readonly(run_dir: Path, monkeypatch):
    chmod_tree(run_dir, writable=False)
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and Path(os.fspath(path)).resolve().is_relative_to(run_dir.resolve()):
            return False  # as on a read-only mount
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    connects: list[str] = []
    real_connect = sqlite3.connect

    def connect(database, *args, **kwargs):
        connects.append(str(database))
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    before = snapshot(run_dir)
    holder = type("ReadOnlyRun", (), {})()
    holder.path, holder.connects = run_dir, connects
    try:
        yield holder
        assert snapshot(run_dir) == before, "a command wrote into the read-only run folder"
        for uri in connects:  # every connection to a journal in the folder was read-only and immutable
            if str(run_dir) in uri:
                assert uri.startswith("file:") and "mode=ro" in uri and "immutable=1" in uri, uri
    finally:
        chmod_tree(run_dir, writable=True)


def cli(*args: str, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out = capsys.readouterr()
    return done.value.code or 0, out.out, out.err


def test_runs_lists_a_read_only_folder(readonly_run, reference, capsys):
    code, out, err = cli("runs", str(readonly_run.path.parent), "--json", capsys=capsys)
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["run"] == readonly_run.path.name
    assert row["status"] == "completed" and row["samples"] == reference[1]["samples"]
    assert any(str(readonly_run.path) in uri for uri in readonly_run.connects)


def test_report_of_a_read_only_folder_writes_in_the_current_directory_and_says_where(
    readonly_run, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("report", str(readonly_run.path), "--gradcheck-samples", "0", capsys=capsys)
    assert code == 0, err
    elsewhere = tmp_path / f"{readonly_run.path.name}-report"
    assert f"the run folder is read-only: writing to {elsewhere}" in err
    files = [Path(line) for line in out.splitlines()]
    assert files and all(f.parent == elsewhere and f.is_file() and f.stat().st_size > 0 for f in files)
    assert {"learning_curves.png", "summary.md"} <= {f.name for f in files}
    assert not (readonly_run.path / "report").exists()


def test_report_to_an_explicit_folder_says_nothing_about_read_only(readonly_run, tmp_path, capsys):
    code, out, err = cli("report", str(readonly_run.path), "-o", str(tmp_path / "figs"), "--no-figures",
                         capsys=capsys)  # fmt: skip
    assert code == 0, err
    assert "read-only" not in err
    assert (tmp_path / "figs" / "summary.md").is_file()


@pytest.mark.parametrize("fmt", ["csv", "netcdf"])
def test_export_of_a_read_only_folder_touches_nothing_in_it(readonly_run, tmp_path, monkeypatch, capsys, fmt):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("export", str(readonly_run.path), "--format", fmt, capsys=capsys)
    assert code == 0, err
    elsewhere = tmp_path / f"{readonly_run.path.name}-export"
    assert f"writing to {elsewhere}" in err
    assert all(Path(line).parent == elsewhere and Path(line).is_file() for line in out.splitlines())


@pytest.fixture
def running_readonly_run(reference, tmp_path, monkeypatch):
    """A read-only run folder whose last session never ended (as a process left it, killed or still training)."""
    run_dir = tmp_path / "archive" / reference[0].name
    shutil.copytree(reference[0], run_dir)
    con = sqlite3.connect(run_dir / "journal.sqlite")
    con.execute("UPDATE sessions SET exit_status = 'running', ended = NULL WHERE id = (SELECT max(id) FROM sessions)")
    con.commit()
    con.close()
    for leftover in run_dir.glob("journal.sqlite-*"):
        leftover.unlink()
    yield from _readonly(run_dir, monkeypatch)


def test_runs_tells_killed_from_training_in_a_read_only_folder_without_taking_the_lock(running_readonly_run, capsys):
    folder = str(running_readonly_run.path.parent)
    code, out, err = cli("runs", folder, "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)[0]["status"] == "killed"  # nobody holds the lock
    fd = os.open(running_readonly_run.path / ".lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a training process holds it
        code, out, err = cli("runs", folder, "--json", capsys=capsys)
    finally:
        os.close(fd)
    assert code == 0, err
    assert json.loads(out)[0]["status"] == "running"


SCRIPT = r"""
set -e
mount --bind "$SRC" "$MNT"
mount -o remount,bind,ro "$MNT"
touch "$MNT/probe" 2>/dev/null && { echo "the mount is writable"; exit 3; }
"$PY" -m aeqlab.cli runs "$MNT" --json > "$OUT/runs.json"
cd "$OUT"
"$PY" -m aeqlab.cli report "$MNT/$RUN" --no-figures > report.txt 2> report.err
"$PY" -m aeqlab.cli export "$MNT/$RUN" > export.txt 2> export.err
"""


def _mount_namespaces() -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _mount_namespaces(), reason="needs a private mount namespace (unshare -m) for a real ro mount")
def test_runs_report_and_export_on_a_real_read_only_mount(reference, tmp_path):
    src = tmp_path / "archive"
    src.mkdir()
    shutil.copytree(reference[0], src / reference[0].name)
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    before = snapshot(src)
    env = {**os.environ, "SRC": str(src), "MNT": str(mnt), "OUT": str(out), "RUN": reference[0].name,
           "PY": sys.executable}  # fmt: skip
    done = subprocess.run(["unshare", "-m", "sh", "-c", SCRIPT], env=env, capture_output=True, text=True)
    assert done.returncode == 0, (
        done.stdout
        + done.stderr
        + "".join((out / f).read_text() for f in ("report.err", "export.err") if (out / f).exists())
    )
    (row,) = json.loads((out / "runs.json").read_text())
    assert row["status"] == "completed" and row["samples"] == reference[1]["samples"]
    assert "read-only: writing to" in (out / "report.err").read_text()
    assert (out / f"{reference[0].name}-report" / "summary.md").is_file()
    assert (out / f"{reference[0].name}-export" / "samples.csv").is_file()
    assert snapshot(src) == before

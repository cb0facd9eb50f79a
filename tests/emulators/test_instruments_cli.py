"""``aeqlab instruments PROTOCOL``: only with --bench or --emulate, every instrument reported, all closed."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

import aeqlab.backends.bench as bench_backend
import aeqlab.backends.emulate as emulate_backend
import aeqlab.cli  # noqa: F401  (registers the commands)
from aeqlab.cli.app import app
from drivers.scpi import ScpiLink
from sim_backends.emulators.faults import FAULTS_ENV

PROTOCOL = Path(__file__).resolve().parents[2] / "protocols" / "iris_bench_emulated.yaml"
NAMES = ["qdac", "board", "dmm", "smu", "k2450"]


@pytest.fixture
def closes(monkeypatch):
    """Every instrument the command opens, and how often each was closed."""
    record: dict[str, int] = {}
    real_open = bench_backend.open_instrument

    def counting_open(name, cfg, resource=None):
        obj = real_open(name, cfg, resource)
        record[name] = 0
        real_close = obj.close

        def close():
            record[name] += 1
            real_close()

        obj.close = close
        return obj

    monkeypatch.setattr(bench_backend, "open_instrument", counting_open)
    return record


def _short_dmm_timeout(tmp_path: Path) -> Path:
    text = PROTOCOL.read_text()
    assert "    nplc: 1\n" in text
    path = tmp_path / "p.yaml"
    path.write_text(text.replace("    nplc: 1\n", "    nplc: 1\n    timeout: 0.3\n"))
    return path


@pytest.mark.parametrize("flags", [[], ["--json"]])
def test_without_bench_or_emulate_nothing_is_opened(monkeypatch, flags):
    def forbidden(*args, **kwargs):
        raise AssertionError("an instrument was opened without --bench or --emulate")

    monkeypatch.setattr(bench_backend, "open_instrument", forbidden)
    monkeypatch.setattr(emulate_backend, "start_emulators", forbidden)
    monkeypatch.setattr(ScpiLink, "open", forbidden)
    result = CliRunner().invoke(app, ["instruments", str(PROTOCOL), *flags])
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.stderr
    assert "command line: opening instruments needs a choice" in result.stderr
    assert "--bench" in result.stderr and "--emulate" in result.stderr


def test_bench_and_emulate_exclude_each_other(monkeypatch):
    monkeypatch.setattr(emulate_backend, "start_emulators", lambda *a: pytest.fail("opened"))
    result = CliRunner().invoke(app, ["instruments", str(PROTOCOL), "--bench", "--emulate"])
    assert result.exit_code == 2
    assert "--bench and --emulate exclude each other" in result.stderr


def test_a_mute_emulator_fails_alone_and_the_others_are_reported_and_closed(tmp_path, monkeypatch, closes):
    monkeypatch.setenv(FAULTS_ENV, json.dumps({"dmm": ["mute", 1, 1]}))
    monkeypatch.setenv(emulate_backend.LOG_ENV, str(tmp_path / "logs"))
    result = CliRunner().invoke(app, ["instruments", str(_short_dmm_timeout(tmp_path)), "--emulate", "--json"])
    assert result.exit_code == 1, result.stderr
    info = {i["name"]: i for i in json.loads(result.stdout)["instruments"]}
    assert list(info) == NAMES
    assert [n for n in NAMES if info[n]["ok"]] == ["qdac", "board", "smu", "k2450"]
    assert info["dmm"]["error"].startswith("dmm: no reply to '*IDN?'")
    assert "MODEL 2450" in info["k2450"]["identity"] and info["k2450"]["state"]["output_on"] == [False]
    assert result.stderr.strip() == "error: 1 of 5 instruments failed: dmm"
    # each instrument that opened was closed once; the mute one never opened
    assert closes == {"qdac": 1, "board": 1, "smu": 1, "k2450": 1}
    # nothing was set: every command each emulator received is a query, and the sources are as found
    logs = tmp_path / "logs"
    for name in NAMES:
        commands = [line.split("\t", 1)[1] for line in (logs / f"{name}.log").read_text().splitlines()]
        assert commands, name
        assert all("?" in c or c.startswith("GET") for c in commands), (name, commands)
    for name, n in (("smu", 2), ("k2450", 1)):
        assert json.loads((logs / f"{name}.state.json").read_text()) == {"level": [0.0] * n, "on": [False] * n}
    assert json.loads((logs / "qdac.state.json").read_text())["level"] == [0.0] * 24


def test_text_report_names_every_instrument_ok_or_failed(tmp_path, monkeypatch):
    monkeypatch.setenv(FAULTS_ENV, json.dumps({"dmm": ["mute", 1, 1]}))
    result = CliRunner().invoke(app, ["instruments", str(_short_dmm_timeout(tmp_path)), "--emulate"])
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert [line.split(":")[0] for line in lines] == NAMES
    assert lines[2].startswith("dmm: FAILED: dmm: no reply to '*IDN?'")
    assert all(": ok: " in line for i, line in enumerate(lines) if i != 2)


def test_all_good_on_emulators_is_exit_0(closes):
    result = CliRunner().invoke(app, ["instruments", str(PROTOCOL), "--emulate", "--json"])
    assert result.exit_code == 0, result.stderr
    assert all(i["ok"] for i in json.loads(result.stdout)["instruments"])
    assert closes == dict.fromkeys(NAMES, 1)


def test_unreachable_bench_reports_every_instrument_in_one_error_line(tmp_path):
    ports = []
    for _ in range(4):  # loopback ports nobody listens on
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    text = PROTOCOL.read_text()
    for last, port in zip((30, 31, 32, 33), ports, strict=True):
        text = text.replace(f"TCPIP::192.168.1.{last}::5025::SOCKET", f"TCPIP::127.0.0.1::{port}::SOCKET")
    text = text.replace("/dev/ttyACM0", "/dev/ttyACM97")  # a serial port this machine lacks
    assert "192.168" not in text
    (tmp_path / "p.yaml").write_text(text)
    result = CliRunner().invoke(app, ["instruments", str(tmp_path / "p.yaml"), "--bench"])
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: 5 of 5 instruments failed: qdac, board, dmm, smu, k2450"
    lines = result.stdout.splitlines()
    assert len(lines) == 5 and all(": FAILED: " in line for line in lines)
    assert f"qdac: FAILED: qdac: cannot talk to TCPIP::127.0.0.1::{ports[0]}::SOCKET: Connection refused" in lines[0]
    assert "/dev/ttyACM97" in lines[1]

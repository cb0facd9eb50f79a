"""``aeqlab emulate`` and ``aeqlab instruments`` (discovery only on request)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyvisa
from typer.testing import CliRunner

import aeqlab.cli  # noqa: F401  (registers the commands)
from aeqlab.cli.app import app
from drivers.base import DriverSettings
from drivers.keysight_344xx import Keysight344xx

PROTOCOL = Path(__file__).resolve().parents[2] / "protocols" / "iris_bench_emulated.yaml"


def test_emulate_serves_until_ctrl_c_and_logs_every_command(tmp_path):
    cmd = [sys.executable, "-m", "aeqlab.cli", "emulate", str(PROTOCOL), "--json", "--log", str(tmp_path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        resources = json.loads(proc.stdout.readline())
        assert set(resources) == {"qdac", "board", "dmm", "smu", "k2450"}
        assert resources["dmm"].startswith("TCPIP::127.0.0.1::") and resources["board"].startswith("/dev/")
        # a generous timeout: the test is about serving and logging, and a loaded machine answers late
        dmm = Keysight344xx.open("dmm", DriverSettings(resource=resources["dmm"], timeout=10.0))
        assert "34465A" in dmm.identify()
        dmm.read([0])
        dmm.close()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    log = (tmp_path / "dmm.log").read_text().splitlines()
    assert [line.split("\t")[1] for line in log][:2] == ["*IDN?", "*IDN?"]
    assert any(line.endswith("\tREAD?") for line in log)


def test_instruments_reports_without_discovering(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("list_resources broadcasts on the LAN: only with --discover")

    monkeypatch.setattr(pyvisa.ResourceManager, "list_resources", forbidden)
    result = CliRunner().invoke(app, ["instruments", str(PROTOCOL), "--emulate", "--json"])
    assert result.exit_code == 0, result.stderr
    info = {i["name"]: i for i in json.loads(result.stdout)["instruments"]}
    assert "MODEL 2450" in info["k2450"]["identity"]
    assert info["k2450"]["state"] == {"output_on": [False], "level_A": [0.0]}
    assert info["board"]["channels"] == 320 and "output_limits" in info["board"]["limits"]
    assert info["dmm"]["state"] == {"configuration": "VOLT +1.000000E+01,+3.000000E-06", "nplc": 10.0}
    assert "discovered" not in json.loads(result.stdout)


def test_discover_only_on_request(monkeypatch):
    calls = []

    def fake(self, query="?*::INSTR"):
        calls.append(query)
        return ("TCPIP0::10.0.0.7::inst0::INSTR",)

    monkeypatch.setattr(pyvisa.ResourceManager, "list_resources", fake)
    result = CliRunner().invoke(app, ["instruments", "--discover"])
    assert result.exit_code == 0, result.stderr
    assert calls == ["?*"]
    assert "visa: TCPIP0::10.0.0.7::inst0::INSTR" in result.stdout
    assert "nidaq:" in result.stdout


def test_instruments_without_protocol_or_discover_is_bad_input():
    result = CliRunner().invoke(app, ["instruments"])
    assert result.exit_code == 2
    assert "name a protocol, or ask for --discover" in result.stderr

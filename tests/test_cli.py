"""The command line contract: JSON summary, one-line errors, exit codes, learning."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from clirunner import Result, capsys_cli, run_cli

REQUIRED = {
    "status",
    "run_dir",
    "epochs",
    "samples",
    "initial_test_accuracy",
    "initial_test_loss",
    "train_accuracy",
    "test_accuracy",
    "test_loss",
    "params_sha256",
    "wall_s",
}


def aeqlab(*args: str) -> Result:
    return run_cli(*args)


@pytest.fixture(scope="session")  # module scope is torn down and rebuilt when xdist interleaves modules
def iris_run(protocols_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    proc = aeqlab("run", str(protocols_dir / "iris_hopfield_sim.yaml"), "--sim", "--json", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.xdist_group("iris_run")  # one worker computes the module-scoped run once
def test_iris_demo_learns_and_prints_the_summary_contract(iris_run):
    _, summary = iris_run
    assert REQUIRED <= summary.keys()
    assert summary["status"] == "completed"
    assert summary["test_accuracy"] >= 0.93
    assert summary["test_accuracy"] > summary["initial_test_accuracy"] + 0.3
    assert summary["homeostasis_unconverged"] == 0  # every sample's homeostasis reached tolerance
    assert summary["samples"] == summary["epochs"] * 120


@pytest.mark.xdist_group("iris_run")  # one worker computes the module-scoped run once
def test_run_folder_holds_what_the_run_used_and_measured(iris_run, protocols_dir):
    _, summary = iris_run
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "protocol.yaml").read_text() == (protocols_dir / "iris_hopfield_sim.yaml").read_text()
    theta = np.load(run_dir / "params.npy")
    assert hashlib.sha256(theta.astype("<f8").tobytes()).hexdigest() == summary["params_sha256"]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == summary["epochs"]
    assert metrics[-1]["test_accuracy"] == summary["test_accuracy"]
    assert json.loads((run_dir / "summary.json").read_text())["params_sha256"] == summary["params_sha256"]


def test_same_seed_same_parameters(protocols_dir, tmp_path):
    sums = []
    for _ in range(2):
        proc = aeqlab(
            "run", str(protocols_dir / "xor_hopfield_sim.yaml"), "--epochs", "3", "--json", "--out", str(tmp_path)
        )
        sums.append(json.loads(proc.stdout.splitlines()[-1])["params_sha256"])
    other = aeqlab(
        "run",
        str(protocols_dir / "xor_hopfield_sim.yaml"),
        "--epochs",
        "3",
        "--seed",
        "7",
        "--json",
        "--out",
        str(tmp_path),
    )
    assert sums[0] == sums[1] != json.loads(other.stdout.splitlines()[-1])["params_sha256"]


def test_xor_learns(protocols_dir, tmp_path):
    proc = aeqlab("run", str(protocols_dir / "xor_hopfield_sim.yaml"), "--json", "--out", str(tmp_path))
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["test_accuracy"] == 1.0 and summary["test_loss"] < 0.1


def test_gradcheck_json(protocols_dir):
    proc = aeqlab(
        "gradcheck",
        str(protocols_dir / "iris_hopfield_sim.yaml"),
        "--beta",
        "1e-3",
        "--variant",
        "centered",
        "--nudging",
        "tracking",
        "--samples",
        "2",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["relative_error"] <= 1e-3 and summary["cosine"] > 0.9999
    assert {"cosine_to_gradient", "per_sample"} <= summary.keys()


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["run", "missing.yaml"], 2, "missing.yaml: no such file"),
        (["run"], 2, "Missing argument"),
        (["run", "{iris}", "--epochs", "zero"], 2, "--epochs"),
        (["run", "{iris}", "--sim", "--bench"], 2, "exclude each other"),
        (["gradcheck", "{iris}", "--beta", "nan"], 2, "--beta"),
        (["gradcheck", "{iris}", "--variant", "sideways"], 2, "sideways"),
        (["nonsense"], 2, "No such command"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, code, fragment, protocols_dir):
    args = [a.replace("{iris}", str(protocols_dir / "iris_hopfield_sim.yaml")) for a in args]
    proc = aeqlab(*args)
    assert proc.returncode == code
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0] and "Traceback" not in proc.stderr


def test_bad_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ninstruments: {dac: {driver: sim}\nroles: [\n")
    proc = aeqlab("run", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{bad}:" in proc.stderr


def test_real_instruments_are_never_driven_unless_asked(protocols_dir, tmp_path):
    text = (
        (protocols_dir / "xor_hopfield_sim.yaml")
        .read_text()
        .replace("smu: {driver: sim}", "smu: {driver: keithley2450}")
    )
    path = tmp_path / "xor_real.yaml"
    path.write_text(text)
    proc = aeqlab("run", str(path), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 2
    assert "never driven unless you say so" in proc.stderr and "--sim" in proc.stderr
    assert not (tmp_path / "runs").exists()
    dry = aeqlab("run", str(path), "--sim", "--epochs", "1", "--json", "--out", str(tmp_path / "runs"))
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout.splitlines()[-1])["backend"] == "sim"


def test_ctrl_c_while_the_command_line_loads_or_runs_is_exit_130_and_one_line(tmp_path):
    """SIGINT at moments from the console entry module on (start-up, loading, the first samples): no traceback."""
    import signal
    import time

    protocol = Path(__file__).resolve().parents[1] / "protocols" / "xor_hopfield_sim.yaml"
    code = (
        "import sys, aeqlab_entry; sys.stderr.write('ready\\n'); sys.stderr.flush(); "
        f"sys.argv = ['aeqlab', 'run', {str(protocol)!r}, '--out', {str(tmp_path)!r}]; aeqlab_entry.main()"
    )
    for delay in (0.0, 0.02, 0.1, 0.3, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stderr.readline() == "ready\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:  # the run ended before the signal: nothing to check
            continue
        assert proc.returncode == 130, (delay, err)
        assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted"), (delay, err)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    return capsys_cli(capsys, *args)


def test_help_version_and_bare_aeqlab(capsys):
    import aeqlab

    code, out, err = _cli(capsys, "-h")
    assert code == 0 and "Usage: aeqlab" in out
    code, out, _ = _cli(capsys, "--version")
    assert code == 0 and out.strip() == f"aeqlab {aeqlab.__version__}"
    code, out, err = _cli(capsys)
    assert code == 0 and "Usage: aeqlab" in out + err and "error" not in err
    code, out, _ = _cli(capsys, "run", "-h")
    assert code == 0 and "--sim" in out and "<bool>" not in out and "<int range>" in out


def test_gradcheck_prints_a_verdict_and_says_when_its_beta_is_not_the_protocols(capsys):
    iris = str(Path(__file__).resolve().parents[1] / "protocols" / "iris_hopfield_sim.yaml")
    code, out, err = _cli(capsys, "gradcheck", iris, "--samples", "1", "--json")
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["verdict"] == "pass" and summary["expected_order"] == 2 and summary["cosine"] <= 1.0
    assert "the protocol trains at beta = 0.5" in err and err.strip().splitlines()[-1].startswith("pass:")


def test_the_installed_command_runs_end_to_end(protocols_dir, tmp_path):
    """One real process through the console script the package installs (the rest run in-process)."""
    script = Path(sys.executable).with_name("aeqlab")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "aeqlab.cli"]
    proc = subprocess.run(
        [*cmd, "run", str(protocols_dir / "xor_hopfield_sim.yaml"), "--epochs", "1", "--json", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["epochs"] == 1
    bad = subprocess.run([*cmd, "run", "missing.yaml"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert "missing.yaml: no such file" in bad.stderr and "Traceback" not in bad.stderr


def test_gradcheck_on_a_noisy_twin_reports_the_mean_cosine_without_an_exactness_verdict(capsys, tmp_path):
    text = (Path(__file__).resolve().parents[1] / "protocols" / "iris_hopfield_sim.yaml").read_text()
    text = text.replace("simulation:\n", "simulation:\n  adc_noise: 1.0e-3\n", 1)
    text = text.replace("tolerance: 1.0e-6", "tolerance: 6.0e-3", 1)
    noisy = tmp_path / "iris_noisy.yaml"
    noisy.write_text(text)
    code, out, err = _cli(capsys, "gradcheck", str(noisy), "--beta", "0.5", "--samples", "3", "--json")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    cosines = [s["cosine"] for s in summary["per_sample"]]
    assert summary["verdict"] == "noisy" and summary["adc_noise"] == 1e-3
    assert summary["mean_cosine"] == pytest.approx(np.mean(cosines)) and summary["mean_cosine"] < 0.9
    assert "mean over 3 samples" in err and "noisy:" in err

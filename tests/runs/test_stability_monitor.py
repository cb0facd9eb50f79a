"""The stability monitor: ρ read during the run, journaled, shown, acted on; the best parameters by validation."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import aeqlab
from aeqlab.backends.sim import stability_preflight
from aeqlab.datasets import load
from aeqlab.engine.methods.phases import PhaseResult
from aeqlab.journal import Journal
from aeqlab.protocol import parse_protocol
from aeqlab.runs.stability import StabilityChecked

IRIS = Path(__file__).resolve().parents[2] / "protocols" / "iris_hopfield_sim.yaml"
# iris with every ε eight times the example's and β = 1: the preflight passes (ρ ≈ 0.69 < 0.8)
# and ρ grows past 0.85 within the first 40 samples, past 1 within the first 50 (measured while developing the
# monitor: a monitor reading every 40 samples at a threshold of 0.9 can miss it, as the path depends on homeostasis)
SOFT = "epsilon: {weights: [0.16, 0.04], biases: [0.16, 0.04]}"


def soft_iris(stability: str, epochs: int = 1, dataset_extra: str = "", soft: bool = True):
    text = IRIS.read_text()
    if soft:
        text = re.sub(r"epsilon: \{.*\}", SOFT, text)
    text = re.sub(r"^  beta: 0\.5", "  beta: 1.0", text, flags=re.M)
    text = re.sub(r"^  epochs: \d+", f"  epochs: {epochs}", text, flags=re.M)
    text = text.replace("  seed: 0\n  input_range", f"  seed: 0\n{dataset_extra}  input_range")
    return parse_protocol(text + "\nstability:\n" + stability, str(IRIS))


def train(protocol, tmp_path, events):
    with aeqlab.open_bench(protocol) as bench:
        run = aeqlab.train(protocol, bench, out=tmp_path, callbacks=[events.append])
    return run, bench


def readings(run_dir: Path) -> list[dict]:
    j = Journal.open_live(Path(run_dir) / "journal.sqlite")
    try:
        return j.stability()
    finally:
        j.close()


def test_a_loop_contraction_is_the_mean_factor_per_correction_and_at_least_one_when_unfinished():
    def phase(first, residual, iterations, converged):
        z = np.zeros(1)
        return PhaseResult(z, z, z, z, iterations, residual, 0.0, converged, False, first_residual=first)

    assert phase(1e-2, 1e-6, 4, True).contraction(1e-6) == pytest.approx(0.1)
    assert phase(1e-2, 1e-6, 8, True).contraction(1e-6) == pytest.approx(10 ** (-0.5))
    assert phase(1e-2, 5e-3, 100, False).contraction(1e-6) == 1.0  # contracted, but too slowly to finish
    assert phase(1e-2, 2e-2, 3, False).contraction(1e-6) == pytest.approx(2 ** (1 / 3))  # diverging
    assert phase(1e-7, 1e-7, 0, True).contraction(1e-6) is None  # nothing to correct: says nothing


def test_the_preflight_passes_and_the_monitor_stops_the_run_when_rho_grows_then_it_resumes(tmp_path):
    protocol = soft_iris("  monitor_every: 40\n  threshold: 0.85\n  action: stop\n")
    data = load(protocol.dataset)
    events: list = []
    with aeqlab.open_bench(protocol) as bench:
        rho0 = stability_preflight(bench.twin, data.x_train)
        run = aeqlab.train(protocol, bench, out=tmp_path, callbacks=[events.append])
        run_samples = run.samples()
        window = run_samples.example.to_numpy()[-40:]  # the examples of the last reading's window
        picked = window[np.unique(np.linspace(0, 39, 20).round().astype(int))]
        rho_now = max(  # the twin as the run left it: the first 20 inputs and the window's
            stability_preflight(bench.twin, data.x_train), stability_preflight(bench.twin, data.x_train[picked])
        )
    assert rho0 < 0.8
    s = run.summary
    assert s["status"] == "interrupted" and s["exit_code"] == 3, s
    assert "stability monitor" in s["error"] and "after training sample" in s["error"]
    assert s["safe_state"] == "safe" and s["stability_stops"] == 1
    rows = readings(run.path)
    assert rows[-1]["action"] == "stop" and rows[-1]["source"] == "twin" and rows[-1]["rho"] >= 0.85
    assert all(r["action"] == "none" and r["rho"] < 0.85 for r in rows[:-1])
    stopped_at = rows[-1]["seq"]
    assert s["samples"] == stopped_at
    if "unstable jump" in rows[-1]["detail"]:  # a jump of the twin called for this reading before the next due one
        assert rows[-1]["rho"] >= rho_now  # the larger of ρ now and ρ at the jump
    else:  # a reading that fell due (on the machines measured: ρ crosses 0.85 by sample 40, jumps come later)
        assert rows[-1]["rho"] == pytest.approx(rho_now)  # what the journal says is the twin's own ρ there
        assert stopped_at % 40 == 0
    checked = [e for e in events if isinstance(e, StabilityChecked)]
    assert [e.samples_done for e in checked] == [r["seq"] for r in rows]
    # resumable: the next session goes on from the sample after the stop
    resumed = aeqlab.resume(run.path)
    assert resumed.summary["samples"] > stopped_at
    sessions = resumed.sessions()
    assert len(sessions) == 2 and sessions.first_sample.iloc[1] == stopped_at + 1


def test_rollback_restores_the_last_healthy_parameters_and_lowers_beta_and_epsilon(tmp_path):
    # how fast ρ grows depends on the homeostasis path, which rounding differences between machines change:
    # a first run that only reads ρ places the threshold between its first reading and its largest
    probe = soft_iris("  monitor_every: 10\n  threshold: 5.0\n  action: warn\n")
    with aeqlab.open_bench(probe) as bench:
        unmonitored = aeqlab.train(probe, bench, out=tmp_path / "probe")
    assert unmonitored.summary["status"] == "failed"  # ε × 8 with a monitor that only reads: the twin fails the run
    rhos = [r["rho"] for r in readings(unmonitored.path)]
    assert len(rhos) >= 2 and max(rhos) > rhos[0], rhos
    threshold = (rhos[0] + max(rhos)) / 2
    protocol = soft_iris(
        f"  monitor_every: 10\n  threshold: {threshold:.6f}\n  action: rollback\n  beta_factor: 0.5\n"
        "  epsilon_factor: 0.5\n  max_rollbacks: 2\n"
    )
    events: list = []
    targets_at: dict[int, np.ndarray] = {}

    rolled_to: list[np.ndarray] = []

    def keep(ev):
        events.append(ev)
        if ev.kind == "sample":
            targets_at[ev.samples_done] = ev.sample.checkpoint.state.targets.copy()
        if isinstance(ev, StabilityChecked) and ev.action == "rollback":
            rolled_to.append(ev.checkpoint.state.targets.copy())  # the trainer's state, as it is then

    with aeqlab.open_bench(protocol) as bench:
        run = aeqlab.train(protocol, bench, out=tmp_path, callbacks=[keep])
        eps = bench.twin.net.spec.eps_weights
    rows = readings(run.path)
    rolled = [r for r in rows if r["action"] == "rollback"]
    assert rolled, rows
    first = rolled[0]
    healthy = [r["seq"] for r in rows if r["action"] == "none" and r["seq"] < first["seq"]]
    assert healthy, rows  # a reading below the threshold came first: the rollback goes back to it
    np.testing.assert_array_equal(rolled_to[0], targets_at[healthy[-1]])
    assert first["beta"] == pytest.approx(protocol.method.beta * 0.5)
    n = len(rolled)
    assert eps == pytest.approx(tuple(e * 0.5**n for e in protocol.simulation.epsilon.weights))
    assert run.summary.get("rollbacks") == n
    after = [r for r in rows if r["seq"] > first["seq"]]
    assert all(r["beta"] <= first["beta"] for r in after)


def test_an_unstable_jump_calls_for_a_reading_at_once_and_the_run_stops_before_the_twin_fails(tmp_path):
    # no reading falls due in this run (every 1000 samples): only the twin's first unstable jump calls for one
    protocol = soft_iris("  monitor_every: 1000\n  threshold: 1.0\n  action: stop\n")
    events: list = []
    run, _ = train(protocol, tmp_path, events)
    s = run.summary
    assert s["status"] == "interrupted" and s["stability_stops"] == 1, s
    (row,) = readings(run.path)
    assert row["action"] == "stop" and row["rho"] >= 1.0 and "unstable jump" in row["detail"], row
    assert row["seq"] == s["samples"] < 1000
    assert 1 <= s["twin_unstable_jumps"] < 5  # the twin fails a run at its fifth (unmonitored, this one fails)


def test_an_unstable_jump_between_two_readings_is_acted_on_at_the_next_even_when_rho_reads_low():
    from aeqlab.protocol import Stability
    from aeqlab.runs.messages import MeasureStability, Rollback, TwinReading
    from aeqlab.runs.stability import StabilityMonitor

    config = Stability(monitor_every=10, threshold=0.9, action="rollback", beta_factor=0.5)
    monitor = StabilityMonitor(config, tolerance=1e-3)

    def read(reading, samples):
        plan = monitor.check(1, samples, np.full(3, float(samples)), 1.0, lambda beta: None)
        sent = [next(plan)]
        assert isinstance(sent[0], MeasureStability)
        try:
            sent.append(plan.send(reading))
            while True:
                sent.append(next(plan))
        except StopIteration as done:
            return sent, done.value

    sent, beta = read(TwinReading(0.4), 10)  # healthy: nothing done
    assert beta == 1.0 and sent[-1].event.action == "none"
    sent, beta = read(TwinReading(0.45, jumps=2, jump_rho=1.3), 20)  # ρ reads low now, but the twin jumped
    rollback, event = sent[1], sent[-1].event
    assert isinstance(rollback, Rollback) and rollback.targets.tolist() == [10.0] * 3  # to the healthy reading
    assert beta == 0.5 and event.action == "rollback" and event.rho == 1.3
    assert "2 unstable jumps since the last reading (rho 1.3 there, 0.45 now)" in event.detail


def test_the_validation_split_keeps_the_best_parameters_never_from_the_test_set(tmp_path):
    protocol = soft_iris(
        "  monitor_every: 40\n  threshold: 5.0\n  action: warn\n",
        epochs=2,
        dataset_extra="  validation: 0.1\n",
        soft=False,  # the example's ε: two epochs with ε × 8 would end in the twin's StabilityError
    )
    data = load(protocol.dataset)
    assert len(data.y_val) == 12 and len(data.y_train) == 120 - 12 and len(data.y_test) == 30
    whole = load(protocol.dataset.model_copy(update={"validation": None}))
    np.testing.assert_array_equal(data.x_test, whole.x_test)  # the test set is untouched
    pool = {tuple(r) for r in whole.x_train}
    assert all(tuple(r) in pool for r in data.x_val) and all(tuple(r) in pool for r in data.x_train)
    events: list = []
    run, _ = train(protocol, tmp_path, events)
    assert run.summary["status"] == "completed", run.summary.get("error")
    best = run.best_params()
    assert best is not None and (run.path / "best.npz").is_file()
    bests = [e for e in events if e.kind == "best"]
    last = bests[-1]
    np.testing.assert_array_equal(best["theta"], last.theta)
    assert best["samples"] == last.samples_done and best["accuracy"] == max(e.accuracy for e in bests)
    # the file holds the parameters the journal committed at that sample
    j = Journal.open_live(run.path / "journal.sqlite")
    seq, theta = j.snapshots()
    j.close()
    np.testing.assert_array_equal(theta[list(seq).index(best["samples"])], best["theta"])
    assert run.summary["best"]["samples"] == best["samples"]


# every ε five times the example's, β = 1: the twin starts at ρ ≈ 0.4, is at 0.55 after the first epoch
# and fails early in the second (ρ 0.8 at sample 140, its own StabilityError before sample 180; measured
# while writing the twin's held-ratio jump check)
SOFTER = "epsilon: {weights: [0.1, 0.025], biases: [0.1, 0.025]}"


def softer_iris(stability: str | None, epochs: int = 3):
    text = re.sub(r"epsilon: \{.*\}", SOFTER, IRIS.read_text())
    text = re.sub(r"^  beta: 0\.5", "  beta: 1.0", text, flags=re.M)
    text = re.sub(r"^  epochs: \d+", f"  epochs: {epochs}", text, flags=re.M)
    return parse_protocol(text + ("\nstability:\n" + stability if stability else ""), str(IRIS))


@pytest.fixture(scope="module")
def unmonitored(tmp_path_factory):
    """The softer iris run without a monitor: the twin fails it (StabilityError) after its first epoch."""
    protocol = softer_iris(None)
    with aeqlab.open_bench(protocol) as bench:
        run = aeqlab.train(protocol, bench, out=tmp_path_factory.mktemp("unmonitored"))
    return run


def test_without_the_monitor_a_run_whose_rho_crosses_one_after_an_epoch_fails_on_the_twin(unmonitored):
    s = unmonitored.summary
    assert s["status"] == "failed" and "keeps jumping to distant states" in s["error"], s
    assert "simulation.epsilon" in s["error"] and s["safe_state"] == "safe"
    assert unmonitored.header.extra["preflight_rho"] < 0.8  # it started stable
    assert s["epochs_done"] >= 1 and s["samples"] > unmonitored.header.samples_per_epoch  # after an epoch
    assert s["twin_unstable_jumps"] >= 5


@pytest.mark.parametrize("action", ["stop", "rollback"])
def test_with_the_monitor_the_same_run_is_stopped_or_rolled_back_before_the_twin_fails(unmonitored, action, tmp_path):
    failed_at = unmonitored.summary["samples"]
    extra = "  beta_factor: 0.5\n  epsilon_factor: 0.5\n  max_rollbacks: 3\n" if action == "rollback" else ""
    protocol = softer_iris(f"  monitor_every: 10\n  threshold: 0.9\n  action: {action}\n" + extra)
    events: list = []
    run, _ = train(protocol, tmp_path, events)
    s = run.summary
    rows = readings(run.path)
    acted = [r for r in rows if r["action"] == action]
    assert acted and acted[0]["seq"] < failed_at and acted[0]["rho"] >= 0.9 and acted[0]["source"] == "twin"
    assert acted[0]["seq"] > run.header.samples_per_epoch  # it crossed after the first epoch
    assert "keeps jumping" not in (s.get("error") or "")
    if action == "stop":
        assert s["status"] == "interrupted" and s["exit_code"] == 3 and s["samples"] == acted[0]["seq"]
    else:
        assert s["status"] == "completed", s.get("error")
        assert s["rollbacks"] == len(acted) and s["samples"] == 3 * run.header.samples_per_epoch
    shown = [e for e in events if isinstance(e, StabilityChecked) and e.action == action]
    assert shown and shown[0].samples_done == acted[0]["seq"]  # the live view's event

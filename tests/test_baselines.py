"""The baselines (SPSA, exact gradient) train through the same bench calls as Aeqprop."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import aeqlab
from aeqlab.backends import open_backend
from aeqlab.datasets import load
from aeqlab.engine.methods import spsa
from aeqlab.engine.plan import execute
from aeqlab.engine.trainer import Trainer
from aeqlab.errors import InputError, ProtocolError
from aeqlab.protocol import Protocol, parse_protocol
from aeqlab.runs.training import run_unjournaled

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"
IRIS = PROTOCOLS / "iris_hopfield_sim.yaml"


def with_method(path: Path, method: str, epochs: int | None = None) -> tuple[Protocol, str]:
    """The protocol at ``path`` with its method section replaced by ``method`` (YAML lines)."""
    text = path.read_text()
    text = re.sub(r"^method:\n(?:  .*\n)+", "method:\n" + method, text, flags=re.M)
    if epochs is not None:
        text = re.sub(r"^  epochs: \d+", f"  epochs: {epochs}", text, flags=re.M)
    return parse_protocol(text, str(path)), text


def train(protocol: Protocol, epochs: int, oracle: bool = True) -> tuple[Trainer, object, list]:
    data = load(protocol.dataset)
    backend = open_backend(protocol, "sim")
    trainer = Trainer(protocol, backend.bench, data, oracle=backend.oracle if oracle else None)
    initial, history = run_unjournaled(trainer, epochs, protocol.seed)
    return trainer, initial, history


def test_exact_learns_iris_in_three_epochs() -> None:
    protocol, _ = with_method(IRIS, "  name: exact\n  beta: 0.5\n  homeostasis: {tolerance: 1.0e-6}\n")
    _, initial, history = train(protocol, 3)
    assert initial.accuracy < 0.5
    assert history[-1].test_accuracy >= 0.85
    assert history[-1].homeostasis_unconverged == 0
    assert history[-1].train_loss < history[0].train_loss


def test_exact_matches_an_aeqprop_step_direction() -> None:
    """Exact's first epoch moves θ* about as far, and the same way, as Aeqprop's (same step size)."""
    exact, _ = with_method(IRIS, "  name: exact\n  beta: 0.5\n  homeostasis: {tolerance: 1.0e-6}\n")
    aeq, _ = with_method(
        IRIS, "  name: aeqprop\n  beta: 0.5\n  nudging: linearized\n  homeostasis: {tolerance: 1.0e-6}\n"
    )
    te, _, _ = train(exact, 1)
    ta, _, _ = train(aeq, 1)
    theta0 = load_initial(exact)
    de, da = te.state.targets - theta0, ta.state.targets - theta0
    cos = float(de @ da / (np.linalg.norm(de) * np.linalg.norm(da)))
    assert cos > 0.95
    assert 0.7 < np.linalg.norm(de) / np.linalg.norm(da) < 1.4


def load_initial(protocol: Protocol) -> np.ndarray:
    backend = open_backend(protocol, "sim")
    return backend.bench.read("params")


def test_spsa_improves_the_loss_on_iris() -> None:
    protocol, _ = with_method(IRIS, "  name: spsa\n  homeostasis: {tolerance: 1.0e-6}\n  spsa: {a: 0.05, c: 0.01}\n")
    _, initial, history = train(protocol, 3)
    assert history[-1].test_loss < 0.7 * initial.loss
    assert history[-1].homeostasis_unconverged == 0


def test_spsa_holds_theta_at_the_perturbed_targets() -> None:
    protocol, _ = with_method(IRIS, "  name: spsa\n  homeostasis: {tolerance: 1.0e-6}\n  spsa: {c: 0.01}\n")
    data = load(protocol.dataset)
    backend = open_backend(protocol, "sim")
    trainer = Trainer(protocol, backend.bench, data)
    trainer.start()
    y = data.targets(data.y_train)
    for k in range(3):
        rec = execute(spsa.train_sample(trainer.state, data.x_train[k], y[k], protocol.method, k), backend.bench)
        _, c_k = spsa.gains(protocol.method, k)
        delta = spsa.perturbation(protocol.method.spsa.seed, k, rec.theta_h.size)
        np.testing.assert_allclose(rec.plus.theta, rec.theta_h + c_k * delta, atol=1e-6)
        np.testing.assert_allclose(rec.minus.theta, rec.theta_h - c_k * delta, atol=1e-6)
        # the step is along Δ, scaled by the measured loss difference
        assert abs(abs(rec.step @ delta) - np.linalg.norm(rec.step) * np.sqrt(delta.size)) < 1e-9
        assert not np.array_equal(spsa.perturbation(0, k, 50), spsa.perturbation(0, k + 1, 50))


def test_exact_without_an_oracle_is_refused_in_one_line() -> None:
    protocol, _ = with_method(IRIS, "  name: exact\n")
    data = load(protocol.dataset)
    backend = open_backend(protocol, "sim")
    trainer = Trainer(protocol, backend.bench, data)  # no oracle: not wired by a composition root
    with pytest.raises(InputError) as err:
        run_unjournaled(trainer, 1, 0)
    line = err.value.one_line()
    assert "\n" not in line and "oracle" in line and "method.name" in line
    assert trainer.state is None  # refused before the bench was taken


def test_the_session_wires_the_twin_oracle(tmp_path: Path) -> None:
    protocol, text = with_method(IRIS, "  name: exact\n  beta: 0.5\n", epochs=1)
    with aeqlab.open_bench(protocol) as bench:
        summary = aeqlab.train(protocol, bench, out=tmp_path).summary
    assert summary["status"] == "completed", summary.get("error")
    assert summary["test_accuracy"] > summary["initial_test_accuracy"]


def test_an_spsa_run_is_journaled_like_any_other(tmp_path: Path) -> None:
    protocol, text = with_method(IRIS, "  name: spsa\n  spsa: {a: 0.05}\n", epochs=1)
    with aeqlab.open_bench(protocol) as bench:
        summary = aeqlab.train(protocol, bench, out=tmp_path).summary
    assert summary["status"] == "completed", summary.get("error")
    assert summary["samples"] == 120
    assert summary["test_loss"] < summary["initial_test_loss"]


def test_protocols_without_a_method_name_stay_aeqprop() -> None:
    protocol, _ = with_method(IRIS, "  beta: 0.5\n")
    assert protocol.method.name == "aeqprop"
    assert protocol.method.spsa.c == 0.01 and protocol.method.exact.scale == 1.0


@pytest.mark.parametrize(
    ("method", "key"),
    [
        ("  name: spsa\n  homeostasis: {tolerance: 1.0e-3}\n  spsa: {c: 1.0e-3}\n", "method.spsa.c"),
        ("  name: spsa\n  free_phase_homeostasis: false\n", "method.free_phase_homeostasis"),
        ("  name: exact\n  free_phase_homeostasis: false\n", "method.free_phase_homeostasis"),
        ("  name: spsa\n  spsa: {alpha: 1.5}\n", "method.spsa.alpha"),
        ("  name: spsa\n  spsa: {step: 1.0}\n", "method.spsa.step"),
        ("  name: exact\n  exact: {scale: 0}\n", "method.exact.scale"),
        ("  name: sgd\n", "method.name"),
    ],
)
def test_invalid_baseline_options_are_refused_at_their_key(method: str, key: str) -> None:
    with pytest.raises(ProtocolError) as err:
        with_method(IRIS, method)
    assert key in str(err.value)


def test_baselines_ignore_the_aeqprop_tracking_singularity() -> None:
    """β₁ = −β/2 ≤ −1 is refused for tracking Aeqprop only; the baselines do not nudge."""
    with pytest.raises(ProtocolError):
        with_method(IRIS, "  name: aeqprop\n  beta: 3.0\n  nudging: tracking\n")
    protocol, _ = with_method(IRIS, "  name: exact\n  beta: 3.0\n  nudging: tracking\n")
    assert protocol.method.beta == 3.0

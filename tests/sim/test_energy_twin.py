"""The energy-defined twin: a diode-resistor network given by its co-content, relaxed and differentiated by aeqlab."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clirunner import run_cli

from aeqlab.backends.sim import build_twin
from aeqlab.protocol import load_protocol, parse_protocol
from aeqlab.tools.gradcheck import gradcheck


@pytest.fixture(scope="module")
def diode(protocols_dir):
    return load_protocol(protocols_dir / "diode_regression_sim.yaml")[0]


def _without_gradient(protocol, keep_gradient: bool = False):
    """The protocol with finite differences for the Hessian, and for the gradient too unless ``keep_gradient``."""
    sim = protocol.simulation
    update = {"hessian": None} if keep_gradient else {"gradient": None, "hessian": None}
    energy = sim.energy.model_copy(update=update)
    return protocol.model_copy(update={"simulation": sim.model_copy(update={"energy": energy})})


def _variant(protocol, derivatives):
    if derivatives == "user":
        return protocol
    return _without_gradient(protocol, keep_gradient=derivatives == "user gradient")


def test_the_examples_hessian_is_the_finite_differences_of_its_gradient():
    """The diode module's analytic ∂²E against central differences of its own gradient, at random points."""
    from protocols.twins import diode_network as dn

    rng = np.random.default_rng(1)
    for _ in range(5):
        s, theta, x = rng.uniform(-0.6, 0.9, 4), rng.uniform(0.2, 2.0, 13), rng.uniform(-1, 1, 2)
        z = np.r_[s, theta]
        h = 1e-6

        def grad(w, x=x):
            return np.concatenate(dn.gradient(w[:4], w[4:], x))

        fd = np.array([(grad(z + h * e) - grad(z - h * e)) / (2 * h) for e in np.eye(17)])
        H = dn.hessian(s, theta, x)  # the differences' rounding grows with the diodes' exponential: scale atol
        np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-8 * np.max(np.abs(H)))


def test_a_wrong_user_hessian_is_refused_in_one_line_when_the_twin_is_built(diode, tmp_path):
    from aeqlab.errors import ProtocolError

    module = tmp_path / "wrong.py"
    module.write_text(
        "from protocols.twins.diode_network import energy, gradient, hessian as _h\n"
        "def hessian(s, theta, x, rail=1.0):\n"
        "    H = _h(s, theta, x, rail)\n"
        "    H[3, 12] += 0.5\n"  # one mixed entry wrong: the output state with w_2
        "    return H\n"
    )
    sim = diode.simulation
    energy = sim.energy.model_copy(update={"module": str(module)})
    bad = diode.model_copy(update={"simulation": sim.model_copy(update={"energy": energy})})
    with pytest.raises(ProtocolError) as err:
        build_twin(bad)
    msg = str(err.value)
    assert "hessian function differs from finite differences" in msg and "s[3], theta[8]" in msg
    assert "\n" not in msg


def test_the_relaxed_state_is_the_circuits_equilibrium(diode):
    """At the twin's equilibrium Kirchhoff's current law holds at every free node (the user's own currents)."""
    twin = build_twin(diode)
    net = twin.net
    x, u, current = np.array([0.7, -0.4]), net.theta.copy(), np.array([0.05])
    info = net.relax(x, u, current)
    assert info.converged
    from protocols.twins import diode_network as dn

    ds, dtheta = dn.gradient(net.s, net.theta, x)
    np.testing.assert_allclose(ds - np.r_[0, 0, 0, current], 0.0, atol=1e-9)  # nudge current into the output
    # each conductance floats at u − ε ∂E/∂θ (the knob's compliance balances the branch's pull)
    np.testing.assert_allclose(net.theta, u - 0.2 * dtheta, atol=1e-9)


@pytest.mark.parametrize("derivatives", ["user", "user gradient", "finite differences"])
def test_the_oracle_gradient_matches_finite_differences_of_the_loss(diode, derivatives):
    """∇L from implicit differentiation against L(θ ± h) from relaxations with θ held (an independent route)."""
    protocol = _variant(diode, derivatives)
    net = build_twin(protocol).net
    x, y = np.array([0.3, 0.8]), np.array([0.05])
    theta = net.theta.copy()
    net.relax(x, theta, np.zeros(1), hold_theta=True, tolerance=1e-13)
    _, grad, _ = net.linear_response(x, net.outputs, y)

    probe = build_twin(protocol).net  # a second twin: each relaxation starts from its last equilibrium

    def loss(th):
        probe.relax(x, th, np.zeros(1), hold_theta=True, tolerance=1e-13)
        return 0.5 * float(np.sum((probe.outputs - y) ** 2))

    h = 1e-5
    fd = np.array([(loss(theta + h * e) - loss(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("derivatives", ["user", "finite differences"])
def test_gradcheck_is_within_1e_3_at_beta_1e_3_centered(diode, derivatives):
    protocol = diode if derivatives == "user" else _without_gradient(diode)
    samples = 2 if derivatives == "user" else 1  # every derivative by differences: one sample is the slow part
    results = gradcheck(protocol, beta=1e-3, variant="centered", samples=samples)
    assert len(results) == samples
    for r in results:
        assert r.relative_error <= 1e-3
        assert r.cosine > 0.9999


def test_the_diode_network_learns_beyond_a_linear_fit(protocols_dir, tmp_path):
    """One epoch: the test R² rises well past the best linear fit (the diodes' nonlinearity is used)."""
    proc = run_cli(
        "run", str(protocols_dir / "diode_regression_sim.yaml"), "--epochs", "1", "--json", "--out", str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout.splitlines()[-1])
    assert s["homeostasis_unconverged"] == 0 and s["twin_unconverged"] == 0
    assert s["test_loss"] < 0.4 * s["initial_test_loss"]
    assert s["test_r2"] >= 0.93 and s["test_r2"] > s["linear_test_r2"] + 0.1


def test_validate_never_imports_the_energy_module(protocols_dir, tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "twins").mkdir()
    (tmp_path / "twins" / "diode_network.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nraise RuntimeError('broken on purpose')\n"
    )
    (tmp_path / "data").mkdir()
    data = (protocols_dir / "data" / "diode_regression.npz").read_bytes()
    (tmp_path / "data" / "diode_regression.npz").write_bytes(data)
    path = tmp_path / "p.yaml"
    path.write_text((protocols_dir / "diode_regression_sim.yaml").read_text())
    proc = run_cli("validate", str(path))
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    proc = run_cli("run", str(path), "--sim", "--epochs", "1", "--out", str(tmp_path / "runs"))
    assert proc.returncode != 0 and marker.exists()
    assert "simulation.energy.module" in proc.stderr and "broken on purpose" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_energy_sections_are_refused_at_their_keys(protocols_dir):
    text = (protocols_dir / "diode_regression_sim.yaml").read_text()
    src = str(protocols_dir / "diode_regression_sim.yaml")
    for bad, says in [
        ("outputs: [3]", "outputs: [4]"),
        ("params: 13", "params: 12"),
        ("module: twins/diode_network.py", "module: twins/nosuch.py"),
    ]:
        with pytest.raises(Exception) as err:
            parse_protocol(text.replace(bad, says), src)
        assert "energy" in str(err.value) or "roles" in str(err.value)

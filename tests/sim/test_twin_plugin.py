"""A user's twin found by entry point (group aeqlab.twins) runs --sim, plan and gradcheck like a built-in one."""

from __future__ import annotations

import json
import sys

import pytest
from clirunner import run_cli

from sim_backends import physics

PHYSICS = '''
"""A user's own physics, written against sim_backends.physics.TwinPhysics only.

A linear resistive layer: output node voltages s = W x + b relaxed against unit leaks,
energy E = |s|²/2 − s·(W x + b); W (outputs × inputs) and b are the floating parameters.
"""
import numpy as np
from types import SimpleNamespace


class Spec:
    def __init__(self, n_in, n_out):
        self.n_inputs, self.n_outputs, self.n_params = n_in, n_out, n_in * n_out + n_out


class LinearLayer:
    def __init__(self, n_in, n_out, eps, seed):
        self.spec = Spec(n_in, n_out)
        self.eps = float(eps)
        self.theta = np.random.default_rng(seed).uniform(-0.5, 0.5, self.spec.n_params)
        self.s = np.zeros(n_out)

    @property
    def states(self):
        return [self.s]

    @states.setter
    def states(self, v):
        self.s = np.asarray(v[0], float).copy()

    @property
    def outputs(self):
        return self.s

    def _wb(self, theta):
        n_in, n_out = self.spec.n_inputs, self.spec.n_outputs
        return theta[: n_in * n_out].reshape(n_out, n_in), theta[n_in * n_out :]

    def relax(self, x, u, currents, tolerance=None, max_sweeps=None):
        # joint minimum of |s|²/2 − s·(Wx + b) + |u − θ|²/2ε − I·s: fixed-point iteration (a contraction)
        x = np.asarray(x, float)
        for k in range(1, 10_000):
            feat = np.concatenate([np.outer(self.s, x).ravel(), self.s])  # −∂E/∂θ
            theta = u + self.eps * feat
            w, b = self._wb(theta)
            new = w @ x + b + currents
            change = float(np.max(np.abs(new - self.s)))
            self.s, self.theta = new, theta
            if change <= (tolerance or 1e-12):
                break
        return SimpleNamespace(sweeps=k, converged=True, max_change=change, energy=None)

    def stability_ratio(self, x):
        x = np.asarray(x, float)
        return self.eps * (float(x @ x) + 1.0)  # ρ = ε(|x|² + 1): H_ss = I, G = ε(|x|²+1)·I

    def held_stability_ratio(self, x, theta):
        return self.stability_ratio(x)

    def coupling_summary(self):
        return f"epsilon {self.eps}"

    def linear_response(self, x, pulled_from, target):
        x = np.asarray(x, float)
        n_out = self.spec.n_outputs
        J = np.zeros((self.spec.n_params, n_out))  # ∂²E/∂θ∂s
        for i in range(n_out):
            J[i * x.size : (i + 1) * x.size, i] = -x
            J[x.size * n_out + i, i] = -1.0
        grad = -J @ (self.s - target)
        G = self.eps * J.T @ J
        ds = np.linalg.solve(np.eye(n_out) - G, pulled_from - target)
        return self.eps * (J @ ds), grad, np.full(self.spec.n_params, self.eps)


def make(options):
    return LinearLayer(2, 2, options.get("eps", 0.05), options.get("seed", 0))
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A tiny installed distribution (a dist-info on sys.path) with an aeqlab.twins entry point."""
    (tmp_path / "mytwins.py").write_text(PHYSICS)
    info = tmp_path / "mytwins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mytwins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[aeqlab.twins]\nlinear_layer = mytwins:make\nmissing = nosuchmodule:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("mytwins", None)


def _protocol(protocols_dir, folder, model="linear_layer"):
    text = (protocols_dir / "xor_hopfield_sim.yaml").read_text()
    start, end = text.index("simulation:"), text.index("dataset:")
    text = text[:start] + f"simulation:\n  model: {model}\n  options: {{eps: 0.05, seed: 1}}\n\n" + text[end:]
    text = text.replace("dac/ao2:43", "dac/ao2:7").replace("adc/ai2:43", "adc/ai2:7")
    path = folder / "plugin.yaml"
    path.write_text(text)
    return path


def test_the_plugin_is_listed_without_being_imported(plugin):
    assert "linear_layer" in physics.names() and physics.names()[:3] == ["hopfield", "spring", "energy"]
    assert "mytwins" not in sys.modules


def test_validate_checks_the_name_only_and_imports_nothing(plugin, protocols_dir):
    path = _protocol(protocols_dir, plugin, model="not_installed_anywhere")
    proc = run_cli("validate", str(path))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("plan", str(path))
    assert proc.returncode != 0 and "unknown twin model 'not_installed_anywhere'" in proc.stderr
    assert "simulation.model" in proc.stderr and "Traceback" not in proc.stderr


def test_a_plugin_twin_runs_sim_plan_and_gradcheck(plugin, protocols_dir):
    path = _protocol(protocols_dir, plugin)
    proc = run_cli("run", str(path), "--sim", "--epochs", "3", "--json", "--out", str(plugin / "runs"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["status"] == "completed" and summary["samples"] == 12 and summary["backend"] == "sim"
    assert summary["twin_relaxations"] > 0
    proc = run_cli("plan", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "roles.knobs" not in proc.stderr and "knobs" in proc.stdout and "sample 1" in proc.stdout
    proc = run_cli("gradcheck", str(path), "--beta", "1e-3", "--variant", "centered", "--samples", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "pass" in proc.stderr + proc.stdout


def test_a_plugin_that_cannot_load_or_does_not_fit_is_one_line(plugin, protocols_dir):
    path = _protocol(protocols_dir, plugin, model="missing")
    proc = run_cli("run", str(path), "--sim", "--epochs", "1", "--out", str(plugin / "runs"))
    assert proc.returncode != 0 and "cannot be loaded" in proc.stderr and "Traceback" not in proc.stderr
    path.write_text(path.read_text().replace("model: missing", "model: linear_layer").replace("dac/ao2:7", "dac/ao2:6")
                    .replace("adc/ai2:7", "adc/ai2:6"))
    proc = run_cli("run", str(path), "--sim", "--epochs", "1", "--out", str(plugin / "runs"))
    assert proc.returncode != 0 and "roles.knobs" in proc.stderr and "needs 6" in proc.stderr
    assert "Traceback" not in proc.stderr

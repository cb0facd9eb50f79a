"""Floating parameters must be coupled stiffly enough: the twin says so, naming epsilon."""

from __future__ import annotations

import numpy as np
import pytest
from clirunner import run_cli

from aeqlab.errors import StabilityError
from sim_backends import oracle
from sim_backends.hopfield import HopfieldNetwork, HopfieldSpec, half_xavier
from sim_backends.twin import HopfieldTwin


def test_run_refuses_the_reference_couplings_before_touching_anything(protocols_dir, tmp_path):
    text = (protocols_dir / "digits_hopfield_sim.yaml").read_text()
    text = text.replace(
        "epsilon: {weights: [0.01, 0.005], biases: [0.004, 0.002]}",
        "epsilon: {weights: [0.1, 0.05], biases: [0.02, 0.01]}",
    )
    assert "weights: [0.1, 0.05]" in text
    path = tmp_path / "digits_reference_eps.yaml"
    path.write_text(text)
    proc = run_cli("run", str(path), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "simulation.epsilon" in lines[0] and "rho" in lines[0] and "scale every epsilon" in lines[0]
    assert not (tmp_path / "runs").exists()  # nothing was started


def unstable_twin(limit: int) -> HopfieldTwin:
    """A twin whose present state is an equilibrium of softly coupled parameters with ρ > 1."""
    stiff = HopfieldSpec((6, 10, 3), (0.01, 0.01), (0.01, 0.01))
    soft = HopfieldSpec((6, 10, 3), (0.6, 0.6), (0.3, 0.3))
    theta = half_xavier(stiff, (2.0, 2.0), np.random.default_rng(0))
    theta[-13:] = 0.3
    x = np.full(6, 0.8)
    probe = HopfieldNetwork(stiff)
    probe.relax(x, theta, np.zeros(3))
    net = HopfieldNetwork(soft)
    net.states = probe.states
    net.theta = net.theta_at(x, theta, net.states)
    assert oracle.fast_stability_ratio(net, x) > 1
    twin = HopfieldTwin(net, theta, unstable_limit=limit)
    twin.ports["inputs"][:] = x
    twin.ports["knobs"][:] = theta
    twin._dirty = False
    twin._inputs_changed = False
    return twin


def test_twin_raises_when_unstable_jumps_recur_naming_epsilon():
    twin = unstable_twin(limit=1)
    twin.write("nudges", np.arange(3), np.array([1e-3, 0.0, 0.0]))
    with pytest.raises(StabilityError) as info:
        twin.read("outputs", np.arange(3))
    message = info.value.one_line()
    assert "simulation.epsilon" in message and "rho" in message and "0.6" in message
    assert twin.stats.unstable_jumps == 1


def test_a_rare_unstable_jump_is_recorded_not_fatal():
    twin = unstable_twin(limit=5)
    twin.write("nudges", np.arange(3), np.array([1e-3, 0.0, 0.0]))
    twin.read("outputs", np.arange(3))
    assert twin.stats.unstable_jumps == 1 and twin.stats.events[-1].rho > 1


def test_the_monitor_is_told_of_an_unstable_jump_once_and_a_resumed_twin_is_told_the_same():
    twin = unstable_twin(limit=5)
    assert twin.take_unstable_jumps() == (0, 0.0)
    before = twin.snapshot()
    twin.write("nudges", np.arange(3), np.array([1e-3, 0.0, 0.0]))
    twin.read("outputs", np.arange(3))
    kept = twin.snapshot()  # a full checkpoint between the jump and the reading
    jumps, rho = twin.take_unstable_jumps()
    assert jumps == 1 and rho == twin.stats.events[-1].rho > 1
    assert twin.take_unstable_jumps() == (0, 0.0)  # told once
    twin.restore(kept)  # a session resumed from that checkpoint reads what this one read
    assert twin.take_unstable_jumps() == (jumps, rho)
    twin.restore(before)
    assert twin.take_unstable_jumps() == (0, 0.0)


def test_the_outputs_following_a_large_nudge_are_not_a_jump():
    spec = HopfieldSpec((6, 10, 3), (0.01, 0.01), (0.01, 0.01))
    theta = half_xavier(spec, (1.0, 1.0), np.random.default_rng(0))
    twin = HopfieldTwin(HopfieldNetwork(spec), theta, unstable_limit=1)
    twin.write("inputs", np.arange(6), np.full(6, 0.5))
    before = twin.read("outputs", np.arange(3))
    twin.write("nudges", np.arange(3), np.array([0.9, 0.0, 0.0]))
    after = twin.read("outputs", np.arange(3))
    assert np.max(np.abs(after - before)) > twin.jump_threshold  # it did move by more than the threshold
    assert twin.stats.jumps == 0


class ScriptedNet:
    """A stand-in physics whose relaxations move the states as scripted (hidden layer, outputs)."""

    def __init__(self, moves):
        from types import SimpleNamespace

        self.spec = SimpleNamespace(n_inputs=2, n_outputs=2, n_params=3)
        self.states = [np.zeros(4), np.zeros(2)]
        self.theta = np.zeros(3)
        self.moves = list(moves)

    def relax(self, x, u, currents):
        from sim_backends.hopfield import RelaxInfo

        hidden, out = self.moves.pop(0)
        self.states = [self.states[0] + hidden, self.states[1] + out]
        return RelaxInfo(1, True, 0.0, None)

    @property
    def outputs(self):
        return self.states[-1]

    def stability_ratio(self, x):
        return 2.0

    def coupling_summary(self):
        return "scripted"


def test_a_nudge_excuses_the_outputs_move_but_not_a_hidden_jump():
    net = ScriptedNet([(0.0, 0.0), (0.1, 0.9), (0.8, 0.1)])
    twin = HopfieldTwin(net, np.zeros(3), unstable_limit=10)
    twin.read("outputs", np.arange(2))  # the first relaxation (after the inputs)
    twin.write("nudges", np.arange(2), np.array([0.8, 0.0]))
    twin.read("outputs", np.arange(2))  # outputs follow the nudge by 0.9: a response
    assert twin.stats.jumps == 0
    twin.write("nudges", np.arange(2), np.array([0.0, 0.0]))
    twin.read("outputs", np.arange(2))  # the hidden layer jumps by 0.8 under a nudge: still a jump
    assert twin.stats.jumps == 1 and twin.stats.unstable_jumps == 1

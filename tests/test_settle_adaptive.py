"""The adaptive settle: wait τ·ln(Δ̂/tol) for the change Δ̂ the engine expects from what it has seen.

Three levels: the protocol (what is accepted, what is refused, one line each), the plan
(the waits a phase yields against a scripted bench, checked against the formula), and
the twin with first-order settling (homeostasis converges, every reading is near its
equilibrium, in less simulated time than a fixed wait that is as accurate). Nothing
sleeps: the twin's clock is simulated.
"""

from __future__ import annotations

import math
import re
from collections import deque
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from ruamel.yaml import YAML

from aeqlab.backends import open_backend
from aeqlab.datasets import load
from aeqlab.engine.feedback import SecantGains
from aeqlab.engine.methods.phases import FeedbackMemory, Nudge, run_phase
from aeqlab.engine.methods.settling import MIN_OBSERVATIONS, SettleMemory, adaptive_wait, settle_and_read
from aeqlab.engine.plan import Read, Set, Settle, execute
from aeqlab.engine.trainer import Trainer
from aeqlab.errors import ProtocolError
from aeqlab.protocol import Homeostasis, Method, SettleAdaptive, Tracking, load_protocol, parse_protocol
from aeqlab.protocol.schema import protocol_schema

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"
XOR = PROTOCOLS / "xor_hopfield_sim.yaml"
LINE = r"^\S.*?:\d+:\d+: method\.settle\.(?P<key>\w+): (?P<msg>.+)$"


def _with_settle(settle: str) -> str:
    return XOR.read_text(encoding="utf-8").replace("homeostasis:", f"settle: {settle}\n  homeostasis:")


# ------------------------------------------------------------------ protocol
def test_an_adaptive_settle_with_only_tau_takes_its_defaults():
    method = parse_protocol(_with_settle("{mode: adaptive, tau: 2 ms}"), str(XOR)).method
    policy = method.settle_policy
    assert isinstance(policy, SettleAdaptive)
    assert policy.tau == pytest.approx(2e-3) and policy.min == 0.0
    assert policy.tolerance is None  # resolved where it is used: the homeostasis tolerance of the phase
    assert policy.longest == pytest.approx(40e-3)  # 20 τ
    assert method.settle == pytest.approx(40e-3)  # the float view is the longest wait


def test_an_adaptive_settle_with_every_field():
    text = _with_settle("{mode: adaptive, tau: 1 ms, tolerance: 1.0e-7, max: 30 ms, min: 100 us}")
    policy = parse_protocol(text, str(XOR)).method.settle_policy
    assert (policy.tau, policy.tolerance, policy.max, policy.min) == pytest.approx((1e-3, 1e-7, 30e-3, 1e-4))
    assert policy.longest == pytest.approx(30e-3)


def test_the_json_schema_accepts_an_adaptive_settle_and_requires_tau():
    validator = jsonschema.Draft202012Validator(protocol_schema())
    data = YAML(typ="safe", pure=True).load(XOR.read_text(encoding="utf-8"))
    data["method"]["settle"] = {"mode": "adaptive", "tau": "1 ms", "max": 0.02, "tolerance": 1e-6}
    assert list(validator.iter_errors(data)) == []
    data["method"]["settle"] = {"mode": "adaptive", "max": 0.02}
    errors = list(validator.iter_errors(data))
    assert errors and all(list(e.path) == ["method", "settle"] for e in errors)
    reasons = [sub.message for e in errors for sub in _walk(e)]
    assert "'tau' is a required property" in reasons, reasons


def _walk(error):
    yield error
    for sub in error.context or ():
        yield from _walk(sub)


@pytest.mark.parametrize(
    ("settle", "key", "fragment"),
    [
        ("{mode: adaptive}", "tau", "missing required key 'tau'"),
        ("{mode: adaptive, tau: 0}", "tau", "greater than 0"),
        ("{mode: adaptive, tau: 1 V}", "tau", "is a voltage (V), but this field is a time (s)"),
        ("{mode: adaptive, tau: 1 ms, max: 0.5 ms}", "max", "must be at least tau (0.001 s)"),
        ("{mode: adaptive, tau: 1 ms, min: 30 ms}", "min", "must not exceed max (0.02 s)"),
        ("{mode: adaptive, tau: 1 ms, max: 5 ms, min: 6 ms}", "min", "must not exceed max (0.005 s)"),
        ("{mode: adaptive, tau: 1 ms, tolerance: -1.0e-6}", "tolerance", "greater than 0"),
        ("{mode: adaptive, tau: 1 ms, min: -1 ms}", "min", "greater than or equal to 0"),
        (
            "{mode: adaptive, tau: 1 ms, tolerence: 1.0e-6}",
            "tolerence",
            "unknown key 'tolerence' (did you mean 'tolerance'?)",
        ),
    ],
)
def test_bad_adaptive_settings_are_refused_in_one_line_each(settle, key, fragment):
    with pytest.raises(ProtocolError) as info:
        parse_protocol(_with_settle(settle), str(XOR))
    lines = info.value.message.splitlines()
    problems = [line for line in lines if "method.settle" in line]
    assert len(problems) == 1, lines
    m = re.match(LINE, problems[0])
    assert m is not None, problems[0]
    assert m["key"] == key and fragment in m["msg"], problems[0]


# ------------------------------------------------------------------ the wait formula
def test_the_wait_is_tau_ln_of_the_expected_change_over_the_tolerance_clipped():
    policy = SettleAdaptive(mode="adaptive", tau=1e-3, max=10e-3, min=0.5e-3)
    assert adaptive_wait(policy, 1e-3, 1e-6) == pytest.approx(1e-3 * math.log(1e3))
    assert adaptive_wait(policy, 1.0, 1e-6) == pytest.approx(10e-3)  # τ·ln(1e6) = 13.8 ms: capped at max
    assert adaptive_wait(policy, 2e-6, 1e-6) == pytest.approx(1e-3 * math.log(2))  # 0.69 ms: above min
    assert adaptive_wait(policy, 1.2e-6, 1e-6) == pytest.approx(0.5e-3)  # 0.18 ms: raised to min
    assert adaptive_wait(policy, 0.5e-6, 1e-6) == pytest.approx(0.5e-3)  # within tolerance already: min
    assert adaptive_wait(policy, None, 1e-6) == pytest.approx(10e-3)  # nothing known: max
    assert adaptive_wait(policy, 2e-6, 1e-6, least=3e-3) == pytest.approx(3e-3)
    own = SettleAdaptive(mode="adaptive", tau=1e-3, tolerance=1e-3)
    assert adaptive_wait(own, 1.0, 1e-6) == pytest.approx(1e-3 * math.log(1e3))  # its own tolerance wins
    assert adaptive_wait(own, 1e-4, 1e-6) == 0.0  # min defaults to 0
    assert adaptive_wait(own, 1.0, None) == pytest.approx(1e-3 * math.log(1e3))
    assert adaptive_wait(SettleAdaptive(mode="adaptive", tau=1e-3), 1.0, None) == pytest.approx(20e-3)


def test_a_short_wait_is_scaled_up_or_not_learnt_from():
    mem = SettleMemory()
    mem.observe("s", np.zeros(2), np.zeros(1))  # the first readings: nothing to compare with
    assert mem.expect("s") is None
    mem.observe("s", np.array([0.0, 0.3]), np.zeros(1), settled=0.5)  # half settled: the change is 0.6
    mem.observe("s", np.array([0.0, 0.3]), np.array([0.2]))
    assert mem.expect("s") == pytest.approx(0.6)
    mem.observe("s", np.array([9.0, 9.0]), np.zeros(1), settled=0.05)  # too short to say anything
    assert mem.expect("s") == pytest.approx(0.6)
    mem.observe("loop", np.array([9.0, 9.5]), np.zeros(1), residual=0.25)  # ratio 0.5 / 0.25 = 2
    mem.observe("loop", np.array([9.0, 9.6]), np.zeros(1), residual=0.1)  # ratio 1
    assert mem.expect("loop", residual=1e-3) == pytest.approx(2e-3)
    back = SettleMemory.from_state(mem.to_state())
    assert back.expect("loop", 1e-3) == pytest.approx(2e-3) and back.expect("s") == pytest.approx(0.6)
    np.testing.assert_array_equal(back.theta, mem.theta)


class ScriptedBench:
    """A fake bench target: θ and ŷ are functions of what was written; readings are exact.

    Records the settle waits and the readings taken after each settle."""

    def __init__(self, theta_of, outputs_of, n_knobs: int):
        self.theta_of, self.outputs_of = theta_of, outputs_of
        self.values = {"knobs": np.zeros(n_knobs), "inputs": np.zeros(1), "nudges": np.zeros(1)}
        self.waits: list[float] = []
        self.readings: list[list[np.ndarray]] = []

    def apply(self, msg):
        if isinstance(msg, Set):
            self.values[msg.role] = np.array(msg.values, float)
        elif isinstance(msg, Settle):
            self.waits.append(msg.seconds)
            self.readings.append([])
        elif isinstance(msg, Read):
            f = self.theta_of if msg.role == "params" else self.outputs_of
            value = f(self.values["knobs"], self.values["inputs"], self.values["nudges"])
            self.readings[-1].append(value)
            return value.copy()
        return None


def _memory(n: int) -> FeedbackMemory:
    return FeedbackMemory(
        knob_gains=SecantGains(n, 1.0, min_step=1e-9),
        susceptibility=np.eye(1),
        knob_low=np.full(n, -10.0),
        knob_high=np.full(n, 10.0),
    )


def test_settle_and_read_without_a_memory_waits_the_longest_in_its_old_call():
    policy = SettleAdaptive(mode="adaptive", tau=1e-3, max=7e-3)
    bench = ScriptedBench(lambda u, x, i: u + 1.0, lambda u, x, i: x * 0, 2)
    theta, outputs, settled = execute(settle_and_read(policy), bench)
    assert settled and bench.waits == [pytest.approx(7e-3)]
    np.testing.assert_allclose(theta, [1.0, 1.0])


def test_the_waits_of_a_held_phase_follow_the_changes_seen_at_each_site():
    """Plan level, against a scripted bench and an independent account of the rule: the
    first settle of a phase is predicted from the first settles of earlier phases (the
    largest of the last few changes), the k-th from the loop's last residual times the
    largest change/residual ratio seen at iteration k, the blind maximum until a site has
    two observations; inside the loop never less than τ."""
    tau, tol, longest = 1e-3, 1e-6, 30e-3
    policy = SettleAdaptive(mode="adaptive", tau=tau, max=longest)
    homeo = Homeostasis(tolerance=tol, gain=1.0, memory=0)
    # θ = 0.5·u + x (a knob gain the loop has to learn, an input that moves every reading), ŷ follows the knobs
    bench = ScriptedBench(lambda u, x, i: 0.5 * u + x[0], lambda u, x, i: np.array([0.1 * np.sum(u)]), 2)
    memory = _memory(2)
    targets = np.array([0.2, -0.1])
    knobs = np.zeros(2)
    seen: dict = {}  # the test's own account: site → deque of (scaled) changes
    window = SettleMemory().window
    last = None
    for k, x in enumerate([0.30, -0.10, 0.25, 0.05, -0.20, 0.12, -0.04, 0.33]):
        bench.values["inputs"] = np.array([x])
        first = len(bench.waits)
        res = execute(run_phase(memory, knobs, targets, None, homeo, Tracking(), policy), bench)
        assert res.converged, k
        knobs = res.knobs
        residual = None
        for i in range(first, len(bench.waits)):
            it = i - first
            site = ("hold", min(it, 4))
            history = seen.get(site, ())
            if len(history) < MIN_OBSERVATIONS:
                want = longest
            else:
                guess = max(history) * (residual if residual is not None else 1.0)
                want = tau * math.log(guess / tol) if guess > tol else 0.0
                want = min(max(want, tau if residual is not None else 0.0), longest)
            assert bench.waits[i] == pytest.approx(want), (k, it)
            theta, outputs = bench.readings[i]
            if last is not None:
                shown = 1.0 - math.exp(-bench.waits[i] / tau)
                change = max(np.max(np.abs(theta - last[0])), np.max(np.abs(outputs - last[1]))) / shown
                if residual is not None:
                    change /= residual
                seen.setdefault(site, deque(maxlen=window)).append(change)
            last = (theta, outputs)
            residual = float(np.max(np.abs(targets - theta)))
    # every site in use has been learnt by now: the last phase waited less than the blind maximum each time
    assert max(bench.waits[first:]) < longest
    assert len(bench.waits) - first >= 2  # and it had loop iterations to predict


def test_inside_a_loop_the_wait_is_at_least_tau_even_when_little_change_is_expected():
    """Near the tolerance τ·ln(Δ̂/tol) goes to 0; a loop must still let its last correction show."""
    tau, tol = 1e-3, 1e-6
    policy = SettleAdaptive(mode="adaptive", tau=tau)
    bench = ScriptedBench(lambda u, x, i: u, lambda u, x, i: np.zeros(1), 2)
    mem = SettleMemory()
    mem.seen[("hold", 0)] = deque([0.5e-6, 0.5e-6])
    mem.seen[("hold", 1)] = deque([0.5, 0.5])  # changes of half the residual
    execute(settle_and_read(policy, memory=mem, site=("hold", 0), tolerance=tol), bench)
    execute(settle_and_read(policy, memory=mem, site=("hold", 1), residual=1.5 * tol, tolerance=tol), bench)
    execute(settle_and_read(policy, memory=mem, site=("hold", 1), residual=1e3 * tol, tolerance=tol), bench)
    # outside a loop: not 0, but the least wait that still shows a fifth of a change (−τ·ln 0.8)
    assert bench.waits == [pytest.approx(-tau * math.log(0.8)), pytest.approx(tau), pytest.approx(tau * math.log(500))]


def test_a_nudged_phase_without_holding_waits_by_the_first_read_of_earlier_such_phases():
    tau, tol = 1e-3, 1e-6
    policy = SettleAdaptive(mode="adaptive", tau=tau, tolerance=tol)
    homeo = Homeostasis(tolerance=tol)
    bench = ScriptedBench(lambda u, x, i: u + 0.01 * i[0], lambda u, x, i: np.array([0.5 * i[0]]), 2)
    memory = _memory(2)
    waits = []
    for current in (0.2, -0.2, 0.2, -0.2):  # each phase moves ŷ by 0.5·0.4 = 0.2
        nudge = Nudge(beta=0.5, target=np.zeros(1), initial_current=np.array([current]), tracking=False)
        res = execute(run_phase(memory, np.zeros(2), None, nudge, homeo, Tracking(), policy), bench)
        assert res.iterations == 0
        waits.append(bench.waits[-1])
    # the first phase has no earlier reading, the second's change is the first seen: both blind
    assert waits[:3] == [pytest.approx(policy.longest)] * 3
    assert waits[3] == pytest.approx(tau * math.log(0.2 / tol))


# ------------------------------------------------------------------ on the twin
def _twin_run(settle: dict, samples: int) -> tuple[float, float, bool]:
    """Train ``samples`` iris samples on a twin that settles with τ = 1 ms (no latency).

    Returns simulated seconds per sample, the worst distance of a reading taken after a
    settle from the equilibrium the twin is heading for, and whether every phase converged.
    """
    protocol, _ = load_protocol(PROTOCOLS / "iris_hopfield_sim.yaml")
    dumped = protocol.method.model_dump(by_alias=True)
    dumped["settle"] = settle
    method = Method.model_validate(dumped)
    sim = protocol.simulation.model_copy(update={"settling_tau": 1e-3})
    protocol = protocol.model_copy(update={"method": method, "simulation": sim})
    data = load(protocol.dataset)
    backend = open_backend(protocol, "sim")
    twin = backend.twin

    class Watch:
        worst, after = 0.0, False

        def apply(self, msg):
            out = backend.bench.apply(msg)
            if isinstance(msg, Settle):
                self.after = True
            elif isinstance(msg, Read) and self.after:
                eq = twin.net.theta if msg.role == "params" else twin.net.outputs
                self.worst = max(self.worst, float(np.max(np.abs(out - eq))))
                self.after = msg.role != "outputs"
            return out

    try:
        trainer = Trainer(protocol, backend.bench, data)
        trainer.start()
        watch = Watch()
        targets = data.targets(data.y_train)
        t0 = twin.clock.now()
        converged = True
        for i in range(samples):
            rec = execute(trainer.sample_plan(data.x_train[i], targets[i], method.beta), watch)
            converged &= rec.converged
        return (twin.clock.now() - t0) / samples, watch.worst, converged
    finally:
        backend.close()


def test_on_a_settling_twin_the_default_tolerance_converges_with_readings_within_a_few_tolerances():
    tol = 1e-6
    seconds, worst, converged = _twin_run({"mode": "adaptive", "tau": "1 ms"}, 30)
    assert converged and worst <= 5 * tol, worst


def test_on_a_settling_twin_adaptive_waits_are_accurate_in_less_time_than_an_equally_accurate_fixed_wait():
    tol = 1e-6  # iris's homeostasis tolerance
    # the policy settles to a quarter of it: readings may be off by a few times that when a change
    # comes out larger than the largest recently seen
    seconds, worst, converged = _twin_run({"mode": "adaptive", "tau": "1 ms", "tolerance": tol / 4}, 30)
    assert converged
    assert worst <= tol  # every reading after every settle, from the first sample on
    tried = []
    for wait in (10e-3, 12e-3, 14e-3, 16e-3, 18e-3, 20e-3):  # the shortest fixed wait that is as accurate
        tried.append((wait, *_twin_run({"mode": "fixed", "time": wait}, 30)))
        if tried[-1][2] <= worst:
            break
    wait, fixed_seconds, fixed_worst, fixed_converged = tried[-1]
    assert fixed_worst <= worst and fixed_converged, tried
    assert fixed_seconds > 1.25 * seconds, (seconds, worst, tried)  # it takes clearly longer
    # a fixed wait that takes about as long as the adaptive ones is far off
    assert tried[0][1] > 0.9 * seconds and tried[0][2] > 10 * tol, (seconds, tried)


def test_a_free_phase_without_homeostasis_learns_its_wait_as_well():
    from aeqlab.engine.methods.aeqprop import EngineState, free_phase

    tau, tol = 1e-3, 1e-6
    method = Method.model_validate(
        {"settle": {"mode": "adaptive", "tau": "1 ms", "tolerance": tol}, "free_phase_homeostasis": False}
    )
    bench = ScriptedBench(lambda u, x, i: u + 0.0, lambda u, x, i: np.array([x[0]]), 2)
    state = EngineState(targets=np.zeros(2), knobs=np.zeros(2), memory=_memory(2))
    for x in (0.0, 0.3, 0.0, 0.3):  # each input moves ŷ by 0.3
        execute(free_phase(state, np.array([x]), method), bench)
    longest = method.settle_policy.longest
    assert bench.waits[0] == pytest.approx(longest)  # nothing seen yet
    assert bench.waits[-1] == pytest.approx(tau * math.log(0.3 / tol))  # learnt: shorter than the longest
    assert bench.waits[-1] < longest


def test_a_site_that_saw_only_tiny_changes_still_waits_long_enough_to_learn_bigger_ones():
    tau, tol = 1e-3, 1e-4
    policy = SettleAdaptive(mode="adaptive", tau=tau, tolerance=tol)
    memory = _memory(1)
    level = [0.0]
    bench = ScriptedBench(lambda u, x, i: np.array([level[0]]), lambda u, x, i: np.zeros(1), 1)
    for step in (5e-5, 5e-5, 5e-5, 5e-5):  # changes below the tolerance: nothing to wait for
        level[0] += step
        execute(settle_and_read(policy, memory=memory.settle, site="s", tolerance=tol), bench)
    short = bench.waits[-1]
    assert 0 < short < tau  # short, but long enough for a reading to show a fifth of a change
    for _ in range(2):  # the changes become large: the site learns them from its short waits
        level[0] += 0.3
        execute(settle_and_read(policy, memory=memory.settle, site="s", tolerance=tol), bench)
    level[0] += 0.3
    execute(settle_and_read(policy, memory=memory.settle, site="s", tolerance=tol), bench)
    assert bench.waits[-1] >= tau * math.log(0.3 / tol)

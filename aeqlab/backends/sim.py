"""Composition root of the ``sim`` backend: protocol → twin → simulated instruments → bench.

With :mod:`aeqlab.backends.emulate`, the only place allowed to import :mod:`sim_backends`
(an import-linter contract).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from aeqlab.engine.backend import Backend
from aeqlab.engine.bench import Bench
from aeqlab.errors import ProtocolError
from aeqlab.protocol import Protocol
from sim_backends import physics
from sim_backends.blind import BlindSystem
from sim_backends.clock import SimulatedClock
from sim_backends.energy import EnergyNetwork, EnergySpec, load_function
from sim_backends.hopfield import HopfieldNetwork, HopfieldSpec, half_xavier
from sim_backends.instruments import InstrumentFaults, SimInstrument
from sim_backends.spring import SpringNetwork, triangular_network
from sim_backends.twin import Twin


@dataclass
class SimBench:
    bench: Bench
    twin: Twin
    instruments: dict[str, SimInstrument]


def build_twin(protocol: Protocol, *, tolerance: float | None = None, realtime: bool = False) -> Twin:
    sim = protocol.simulation
    if sim is None:
        raise ProtocolError(
            "a dry run needs a 'simulation:' section describing the twin",
            where="simulation",
            hint="add one: 'aeqlab init twin' writes a template",
        )
    tol = tolerance or sim.tolerance
    if sim.model == "spring":
        lat = sim.spring
        spring = triangular_network(
            lat.rows, lat.cols, eps=lat.eps, stiffness_spread=lat.stiffness_spread, seed=lat.seed, inputs=lat.inputs
        )
        spring = type(spring)(**{**spring.__dict__, "output_pairs": tuple(tuple(p) for p in lat.output_pairs)})
        net = SpringNetwork(spring, tolerance=tol, max_sweeps=min(sim.max_sweeps, 500))
        theta0 = spring.rest_lengths()
    elif sim.model == "hopfield":
        spec = HopfieldSpec(
            layers=tuple(sim.layers),
            eps_weights=tuple(sim.epsilon.weights),
            eps_biases=tuple(sim.epsilon.biases),
            hidden_clip=tuple(sim.hidden_clip),
            output_clip=tuple(sim.output_clip),
        )
        net = HopfieldNetwork(spec, tolerance=tol, max_sweeps=sim.max_sweeps)
        theta0 = half_xavier(spec, tuple(sim.init.gains), np.random.default_rng(sim.init.seed))
    else:
        net = _user_physics(protocol, tol)  # imports the user's code
        theta0 = np.asarray(net.theta, float).copy()
    return Twin(
        net,
        theta0,
        SimulatedClock(realtime),
        strict_stability=sim.strict_stability,
        settling_tau=sim.settling_tau,
        drift_rate=sim.drift,
        drift_seed=sim.noise_seed,
        coupling_place=sim.epsilon_place,
    )


def _user_physics(protocol: Protocol, tolerance: float) -> Any:
    """The physics of an energy-defined or plug-in twin (this imports user code), checked against the roles."""
    sim = protocol.simulation
    where = f"simulation.{'energy.module' if sim.model == 'energy' else 'model'}"
    try:
        if sim.model == "energy":
            e = sim.energy
            eps = np.broadcast_to(np.asarray(e.epsilon, float), (e.params,)).copy()
            if isinstance(e.theta0, list):
                theta0 = np.asarray(e.theta0, float)
            else:
                theta0 = np.random.default_rng(e.theta0.seed).uniform(e.theta0.low, e.theta0.high, e.params)
            inf = (-np.inf, np.inf)
            spec = EnergySpec(e.inputs, e.states, e.params, tuple(e.outputs), eps,
                              tuple(e.state_bounds or inf), tuple(e.param_bounds or inf))
            net = EnergyNetwork(
                spec,
                load_function(e.module, e.function),
                load_function(e.module, e.gradient) if e.gradient else None,
                dict(e.constants),
                theta0,
                tolerance=tolerance,
                max_sweeps=min(sim.max_sweeps, 200),
                hessian_fn=load_function(e.module, e.hessian) if e.hessian else None,
            )
            net.check_derivatives()
        else:
            factory = physics.plugin_factory(sim.model)
            try:
                net = factory(dict(sim.options))
            except Exception as exc:  # noqa: BLE001 - the plug-in's code, reported in one line
                raise physics.TwinLoadError(
                    f"the twin plug-in {sim.model!r} failed to build: {type(exc).__name__}: {exc}",
                    hint="check simulation.options against what the plug-in expects",
                ) from None
            physics.check_physics(net, sim.model)
    except physics.TwinLoadError as exc:
        raise ProtocolError(str(exc), where=where, hint=exc.hint) from None
    sizes = {"inputs": net.spec.n_inputs, "outputs": net.spec.n_outputs, "knobs": net.spec.n_params,
             "params": net.spec.n_params}
    for role, n in sizes.items():
        have = getattr(protocol.roles, role).size
        if have != int(n):
            raise ProtocolError(
                f"roles.{role} has {have} channels, but the twin's {sim.describe()} needs {int(n)}",
                where=f"roles.{role}.channels",
                hint="wire as many channels as the twin has ports",
            )
    return net


def build_sim_bench(protocol: Protocol, *, tolerance: float | None = None, realtime: bool = False) -> SimBench:
    """Replace every instrument of the protocol by a simulated one wired to a fresh twin."""
    twin = build_twin(protocol, tolerance=tolerance, realtime=realtime)
    counts: dict[str, int] = {}
    for role_name in ("inputs", "outputs", "knobs", "params", "nudges"):
        for ref in getattr(protocol.roles, role_name).refs():
            counts[ref.instrument] = max(counts.get(ref.instrument, 0), ref.last + 1)
    instruments: dict[str, SimInstrument] = {}
    for name, cfg in protocol.instruments.items():
        n = cfg.channels or counts.get(name, 1)
        sim = protocol.simulation
        faults = InstrumentFaults(
            noise=sim.adc_noise,
            dac_bits=sim.dac_bits,
            latency=sim.latency,
            timeout_every=sim.timeout_every,
            disconnect_after=sim.disconnect_after,
            stuck=stuck_channels(protocol, name),
            seed=sim.noise_seed + len(instruments),
        )
        instruments[name] = SimInstrument(
            name,
            twin,
            n,
            voltage_range=tuple(cfg.voltage_range),
            current_range=tuple(cfg.current_range),
            faults=faults,
        )
    wire_true_transfers(protocol, instruments)
    bench = Bench(protocol, dict(instruments), twin.clock)
    return SimBench(bench, twin, instruments)


def stuck_channels(protocol: Protocol, instrument: str) -> tuple[int, ...]:
    """Channels of ``instrument`` that carry the protocol's stuck parameter readbacks."""
    stuck = set(protocol.simulation.stuck_params)
    out, pos = [], 0
    for ref in protocol.roles.params.refs():
        for k, channel in enumerate(range(ref.first, ref.last + 1)):
            if ref.instrument == instrument and pos + k in stuck:
                out.append(channel)
        pos += ref.count
    return tuple(out)


def wire_true_transfers(protocol: Protocol, instruments: dict[str, Any]) -> None:
    """Wire every role channel to its twin port with its *true* SI transfer.

    The transfer is the role's calibration, except for the knobs, which get the per-knob gain
    and offset errors of ``simulation.knob_errors`` (drawn from its seed, so simulated and
    emulated instruments over the same protocol get the same ones).
    """
    errors = protocol.simulation.knob_errors
    rng = np.random.default_rng(errors.seed)
    for role_name in ("inputs", "outputs", "knobs", "params", "nudges"):
        role = getattr(protocol.roles, role_name)
        cal = role.calibration
        pos = 0
        for ref in role.refs():
            idx = np.arange(pos, pos + ref.count)
            scale = np.full(ref.count, cal.scale)
            offset = np.full(ref.count, cal.offset)
            if role_name == "knobs":
                # the true knob → parameter response: its own gain and offset, unknown to the engine
                gain = np.exp(rng.uniform(np.log(errors.gain_low), np.log(errors.gain_high), ref.count))
                scale = scale / gain
                offset = offset + cal.scale * rng.uniform(-errors.offset, errors.offset, ref.count)
            instruments[ref.instrument].wire(np.arange(ref.first, ref.last + 1), role_name, idx, scale, offset)
            pos += ref.count


def stability_preflight(twin: Twin, inputs: np.ndarray, n: int = 20) -> float:
    """Largest stability ratio ρ at the twin's starting parameters over the first n inputs.

    ρ is taken at the state each input gives with the parameters held where they start
    (as homeostasis holds them): a joint relaxation would already have slid away from an
    unstable state to a saturated one, where ρ reads 0. Works on a copy of the physics.
    """
    net = twin.clone_network()
    theta = twin.net.theta.copy()
    return max((net.held_stability_ratio(x, theta) for x in inputs[:n]), default=0.0)


def open_sim(protocol: Protocol, *, tolerance: float | None = None, realtime: bool = False) -> Backend:
    """The ``sim`` backend: simulated instruments over a fresh twin, with the twin's diagnostics."""
    sb = build_sim_bench(protocol, tolerance=tolerance, realtime=realtime)

    def diagnostics() -> dict[str, Any]:
        st = sb.twin.stats
        return {
            "twin_relaxations": st.relaxations,
            "twin_sweeps": st.sweeps,
            "twin_unconverged": st.unconverged,
            "twin_jumps": st.jumps,
            "twin_unstable_jumps": st.unstable_jumps,
            "twin_clock_s": round(sb.twin.clock.now(), 6),  # simulated bench time: settle waits and latencies
        }

    eps = {"scale": 1.0}  # the stability monitor's rollbacks lower ε (stability.epsilon_factor)
    scalable = dataclasses.is_dataclass(sb.twin.net) and hasattr(getattr(sb.twin.net, "spec", None), "eps_weights")

    def scale_epsilon(factor: float, *, to: float | None = None) -> None:
        """Every ε of the twin times ``factor`` (or set to ``to`` times the protocol's); the states stay."""
        target = eps["scale"] * factor if to is None else to
        net, spec = sb.twin.net, sb.twin.net.spec
        k = target / eps["scale"]
        new = dataclasses.replace(
            net,
            spec=dataclasses.replace(
                spec,
                eps_weights=tuple(e * k for e in spec.eps_weights),
                eps_biases=tuple(e * k for e in spec.eps_biases),
            ),
        )
        new.states, new.theta = [a.copy() for a in net.states], net.theta.copy()
        sb.twin.net, sb.twin._dirty = new, True
        eps["scale"] = target

    def snapshot() -> dict:
        return {
            "twin": sb.twin.snapshot(),
            "instruments": {n: i.snapshot() for n, i in sb.instruments.items()},
            "epsilon_scale": eps["scale"],
        }

    def restore(snap: dict) -> None:
        if "twin" not in snap:  # journals written before the instruments were in the snapshot
            sb.twin.restore(snap)
            return
        if scalable and float(snap.get("epsilon_scale", 1.0)) != eps["scale"]:
            scale_epsilon(1.0, to=float(snap.get("epsilon_scale", 1.0)))
        sb.twin.restore(snap["twin"])
        for name, state in snap["instruments"].items():
            if name in sb.instruments:
                sb.instruments[name].restore(state)

    backend = Backend(
        "sim",
        sb.bench,
        snapshot,
        restore,
        diagnostics,
        twin=sb.twin,
        oracle=twin_oracle(sb.twin),
        stability=lambda x: stability_preflight(sb.twin, x),
        unstable_jumps=sb.twin.take_unstable_jumps,
    )
    backend.instruments = sb.instruments  # type: ignore[attr-defined]  # for tools that count calls
    backend.scale_epsilon = scale_epsilon if scalable else None  # type: ignore[attr-defined]
    return backend


def twin_oracle(twin: Any) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """The exact baseline's gradient from a twin: ε⊙∇L at its present equilibrium.

    Works on a copy of the physics (inputs and knobs as they are, no nudging), so the
    twin itself is untouched. None when the twin's model offers no linear response.
    """
    if not hasattr(twin.clone_network(), "linear_response"):
        return None

    def oracle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        net = twin.clone_network()
        net.relax(twin.ports["inputs"], twin.ports["knobs"], np.zeros(np.size(y)))
        _, gradient, eps = net.linear_response(x, net.outputs, y)
        return eps * gradient

    return oracle


def open_blind(protocol: Protocol) -> Backend:
    """Stand-in instruments over no physics, for previewing a bench protocol that has no twin.

    Each instrument of the protocol becomes a simulated one with its ranges, each role wired
    with its own calibration (no hidden errors); readings are placeholders
    (:class:`~sim_backends.blind.BlindSystem`). Nothing real is opened.
    """
    sizes = {r: getattr(protocol.roles, r).size for r in ("inputs", "outputs", "knobs", "params", "nudges")}
    system = BlindSystem(sizes)
    counts: dict[str, int] = {}
    for role_name in sizes:
        for ref in getattr(protocol.roles, role_name).refs():
            counts[ref.instrument] = max(counts.get(ref.instrument, 0), ref.last + 1)
    instruments = {
        name: SimInstrument(name, system, cfg.channels or counts.get(name, 1),
                            voltage_range=tuple(cfg.voltage_range), current_range=tuple(cfg.current_range))
        for name, cfg in protocol.instruments.items()
    }
    for role_name in sizes:
        role = getattr(protocol.roles, role_name)
        cal, pos = role.calibration, 0
        for ref in role.refs():
            idx = np.arange(pos, pos + ref.count)
            instruments[ref.instrument].wire(np.arange(ref.first, ref.last + 1), role_name, idx,
                                             np.full(ref.count, cal.scale), np.full(ref.count, cal.offset))
            pos += ref.count
    bench = Bench(protocol, dict(instruments), system.clock)
    backend = Backend("blind", bench, lambda: {}, lambda snap: None, lambda: {"placeholder_reads": system.reads})
    backend.instruments = instruments  # type: ignore[attr-defined]
    return backend

"""Backends: what a protocol runs on. A composition root, like the CLI.

* ``sim``: every instrument replaced by a simulated one over the protocol's twin;
* ``emulate``: the real driver classes talking to emulators of the instruments over
  real transports (loopback TCP, pseudo-terminals), the emulators coupled to the twin;
* ``bench``: the real driver classes talking to the real instruments.

The engine never sees which: it gets a :class:`Backend` whose bench implements the
drivers' capability Protocols. Only simulated backends offer ``snapshot``/``restore``
(exact resume) and ``diagnostics`` (the twin's statistics).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aeqlab.engine.bench import Bench
from aeqlab.errors import InputError
from aeqlab.protocol import Protocol

KINDS = ("sim", "emulate", "bench")


@dataclass
class Backend:
    kind: str
    bench: Bench
    snapshot: Callable[[], dict] | None = None
    restore: Callable[[dict], None] | None = None
    diagnostics: Callable[[], dict[str, Any]] = lambda: {}
    closers: list[Callable[[], None]] = field(default_factory=list)
    twin: Any = None  # the twin object itself, for composition-root tools (gradcheck, plan)
    oracle: Callable[[Any, Any], Any] | None = None  # ε⊙∇L at the present equilibrium (method exact)

    def close(self) -> None:
        """Close instruments, then stop emulators; never raises."""
        self.bench.close()
        for closer in reversed(self.closers):
            try:
                closer()
            except Exception:  # noqa: BLE001 - closing must reach every resource
                pass


def choose_kind(protocol: Protocol, *, sim: bool, emulate: bool, bench: bool) -> str:
    """The backend a command line asks for. Real instruments are never driven unless asked."""
    chosen = [k for k, on in (("sim", sim), ("emulate", emulate), ("bench", bench)) if on]
    if len(chosen) > 1:
        raise InputError(f"--{chosen[0]} and --{chosen[1]} exclude each other", where="command line")
    if chosen:
        return chosen[0]
    if protocol.is_simulated_only():
        return "sim"
    raise InputError(
        "this protocol names real instruments; they are never driven unless you say so",
        where="command line",
        hint="add --sim for a dry run on the twin, --emulate for emulated instruments, or --bench",
    )


def open_backend(protocol: Protocol, kind: str, **options: Any) -> Backend:
    """Build the bench a protocol runs on."""
    if kind == "sim":
        return _open_sim(protocol, **options)
    if options.get("realtime") and kind != "sim":
        raise InputError(
            "--realtime paces a twin; instruments keep their own time",
            where="--realtime",
            hint="drop --realtime, or use --sim",
        )
    if kind == "emulate":
        from aeqlab.backends.hardware import open_emulated

        return open_emulated(protocol)
    if kind == "bench":
        from aeqlab.backends.hardware import open_bench

        return open_bench(protocol)
    raise InputError(f"unknown backend {kind!r}", where="command line", hint=f"use one of {', '.join(KINDS)}")


def _open_sim(protocol: Protocol, *, tolerance: float | None = None, realtime: bool = False) -> Backend:
    from aeqlab.backends.sim import build_sim_bench

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

    def snapshot() -> dict:
        return {"twin": sb.twin.snapshot(), "instruments": {n: i.snapshot() for n, i in sb.instruments.items()}}

    def restore(snap: dict) -> None:
        if "twin" not in snap:  # journals written before the instruments were in the snapshot
            sb.twin.restore(snap)
            return
        sb.twin.restore(snap["twin"])
        for name, state in snap["instruments"].items():
            if name in sb.instruments:
                sb.instruments[name].restore(state)

    return Backend("sim", sb.bench, snapshot, restore, diagnostics, twin=sb.twin, oracle=twin_oracle(sb.twin))


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

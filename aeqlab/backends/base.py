"""Choosing and opening a backend: one composition root per kind.

* ``sim`` (:mod:`aeqlab.backends.sim`): every instrument replaced by a simulated one
  over the protocol's twin;
* ``emulate`` (:mod:`aeqlab.backends.emulate`): the real driver classes talking to
  emulators of the instruments over real transports (loopback TCP, pseudo-terminals),
  the emulators coupled to the twin;
* ``bench`` (:mod:`aeqlab.backends.bench`): the real driver classes talking to the
  real instruments.

The engine never sees which: it gets a :class:`~aeqlab.engine.backend.Backend`.
"""

from __future__ import annotations

from typing import Any

from aeqlab.engine.backend import Backend
from aeqlab.errors import InputError
from aeqlab.protocol import Protocol

KINDS = ("sim", "emulate", "bench")


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
    """Build the bench a protocol runs on (``kind``: sim, emulate or bench).

    First the memory the run will need is compared with what is available
    (:mod:`aeqlab.backends.memory`): a run that cannot fit is refused before anything
    is allocated or any instrument is opened.
    """
    if kind in KINDS:
        from aeqlab.backends import memory

        memory.check_memory(protocol, kind)
    if kind == "sim":
        from aeqlab.backends.sim import open_sim

        return open_sim(protocol, **options)
    if options.get("realtime") and kind != "sim":
        raise InputError(
            "--realtime paces a twin; instruments keep their own time",
            where="--realtime",
            hint="drop --realtime, or use --sim",
        )
    if kind == "emulate":
        from aeqlab.backends.emulate import open_emulated

        return open_emulated(protocol)
    if kind == "bench":
        from aeqlab.backends.bench import open_bench

        return open_bench(protocol)
    raise InputError(f"unknown backend {kind!r}", where="backend", hint=f"use one of {', '.join(KINDS)}")

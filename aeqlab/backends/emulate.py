"""Composition root of the ``emulate`` backend: the real driver classes on emulated instruments.

The emulators (loopback TCP, pseudo-terminals) are coupled to the protocol's twin and
wired with the same true transfers and knob errors as ``--sim`` (:mod:`aeqlab.backends.sim`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aeqlab.backends.bench import ROLE_NAMES, _link_stats, open_instruments
from aeqlab.backends.sim import build_twin, stability_preflight, wire_true_transfers
from aeqlab.engine.backend import Backend
from aeqlab.engine.bench import Bench
from aeqlab.errors import InputError
from aeqlab.protocol import Protocol
from aeqlab.signals import shielded
from drivers.capabilities import WallClock
from sim_backends.emulators import EMULATORS, TwinChannels

LOG_ENV = "AEQLAB_EMULATOR_LOG"


@dataclass
class EmulatorSet:
    """Running emulators of a protocol's instruments, bound to one twin."""

    twin: Any
    emulators: dict[str, Any]
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def resources(self) -> dict[str, str]:
        return {name: emu.resource for name, emu in self.emulators.items()}

    def write_logs(self, folder: str | Path) -> None:
        """Per instrument: its commands (``<name>.log``, ``time<TAB>command``), final outputs, replies' times."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, emu in self.emulators.items():
            with open(folder / f"{name}.log", "w", encoding="utf-8") as fh:
                for rec in list(emu.log):
                    fh.write(f"{rec.time:.6f}\t{rec.command}\n")
            state = {k: np.asarray(v).tolist() for k, v in emu.output_state().items()}
            (folder / f"{name}.state.json").write_text(json.dumps(state), encoding="utf-8")
            (folder / f"{name}.replies.json").write_text(json.dumps(emu.reply_record()), encoding="utf-8")

    def mark_started(self) -> None:
        """With ``AEQLAB_EMULATOR_LOG`` set: ``started.json`` there (wall time, resources) once all serve."""
        folder = os.environ.get(LOG_ENV)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            record = {"time": time.time(), "resources": self.resources}
            tmp = Path(folder) / "started.json.tmp"
            tmp.write_text(json.dumps(record), encoding="utf-8")
            tmp.replace(Path(folder) / "started.json")  # whole or absent for a reader watching the folder

    def stop(self) -> None:
        """Stop every emulator (then write the logs if ``AEQLAB_EMULATOR_LOG`` names a folder)."""
        for emu in self.emulators.values():
            emu.stop()
        folder = os.environ.get(LOG_ENV)
        if folder:
            self.write_logs(folder)


class TwinWallClock:
    """A twin clock that follows the wall clock (settling and drift then happen in real time)."""

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._origin

    def set(self, t: float) -> None:
        self._origin = time.monotonic() - float(t)

    def sleep(self, seconds: float, *, settling: bool = True) -> None:
        if seconds > 0:  # the emulators' threads run meanwhile: no spinning here
            time.sleep(seconds)


def board_counts(cfg: Any) -> tuple[int, int]:
    options = getattr(cfg, "options", None) or {}
    return int(options.get("dac_channels") or 160), int(options.get("adc_channels") or 160)


def start_emulators(protocol: Protocol, twin: Any | None = None) -> EmulatorSet:
    """Start one emulator per instrument over the protocol's twin, wired as ``--sim`` wires it."""
    if twin is None:
        twin = build_twin(protocol)
        twin.clock = TwinWallClock()  # emulated instruments live in wall-clock time
    lock = threading.RLock()
    sim = protocol.simulation  # its instrument non-idealities apply to the emulators too
    used: dict[str, int] = {}
    for role_name in ROLE_NAMES:
        for ref in getattr(protocol.roles, role_name).refs():
            used[ref.instrument] = max(used.get(ref.instrument, 0), ref.last + 1)
    wirings: dict[str, Any] = {}
    sizes: dict[str, tuple[int, ...]] = {}
    for name, cfg in protocol.instruments.items():
        if cfg.driver not in EMULATORS:
            raise InputError(
                f"instrument {name!r}: driver {cfg.driver!r} has no emulator",
                where=f"instruments.{name}.driver",
                hint=f"emulated drivers: {', '.join(sorted(EMULATORS))}; or run with --sim",
            )
        if cfg.driver == "serial_board":
            n_dac, n_adc = board_counts(cfg)
            sizes[name] = (n_dac, n_adc)
            n = n_dac + n_adc
        elif cfg.driver in ("keithley2450", "keithley2400", "keysight_344xx"):
            n = 1
        elif cfg.driver == "keysight_b2900":
            n = cfg.channels or 2
        else:
            n = cfg.channels or 24
        if used.get(name, 0) > n:
            raise InputError(f"instrument {name!r} has {n} channels; the roles use {used[name]}", where="roles")
        lo, hi = cfg.voltage_range
        wirings[name] = TwinChannels(
            twin,
            n,
            lock,
            noise=float(getattr(sim, "adc_noise", 0.0) or 0.0),
            dac_step=(hi - lo) / 2**sim.dac_bits if getattr(sim, "dac_bits", None) else 0.0,
            seed=int(getattr(sim, "noise_seed", 0) or 0) + len(wirings),
        )
    _wire(protocol, twin, wirings)
    emulators: dict[str, Any] = {}
    try:
        for name, cfg in protocol.instruments.items():
            cls = EMULATORS[cfg.driver]
            if cfg.driver == "serial_board":
                emu = cls(name, wirings[name], *sizes[name])
            else:
                emu = cls(name, wirings[name])
            emu.latency = float(getattr(sim, "latency", 0.0) or 0.0)
            emu.drop_every = int(getattr(sim, "timeout_every", 0) or 0)
            emulators[name] = emu.start()
    except BaseException:
        with shielded():  # a second Ctrl-C must not leave emulators running
            for emu in emulators.values():
                emu.stop()
        raise
    emus = EmulatorSet(twin, emulators, lock)
    emus.mark_started()
    return emus


def _wire(protocol: Protocol, twin: Any, wirings: dict[str, Any]) -> None:
    """The true SI transfers of every channel, exactly as the simulated instruments get them.

    A nudge source also measures the output node it drives (nudge i into output i), in
    the outputs' volts: an emulated SMU's compliance then trips as a real one would.
    """
    wire_true_transfers(protocol, wirings)
    cal = protocol.roles.outputs.calibration
    pos = 0
    for ref in protocol.roles.nudges.refs():
        wirings[ref.instrument].wire_node(
            np.arange(ref.first, ref.last + 1), np.arange(pos, pos + ref.count), cal.scale, cal.offset
        )
        pos += ref.count


def open_emulated(protocol: Protocol) -> Backend:
    """The real driver classes on emulators of the protocol's instruments, over its twin."""
    emus = start_emulators(protocol)
    try:
        instruments = open_instruments(protocol, emus.resources)
    except BaseException:
        with shielded():
            emus.stop()
        raise
    try:
        bench = Bench(protocol, instruments, WallClock())
    except BaseException:
        with shielded():
            for obj in instruments.values():
                obj.close()
            emus.stop()
        raise

    def diagnostics() -> dict[str, Any]:
        st = vars(emus.twin.stats)
        twin = {f"twin_{k}": v for k, v in st.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return {**twin, **_link_stats(instruments)}

    backend = Backend(
        "emulate",
        bench,
        diagnostics=diagnostics,
        closers=[emus.stop],
        twin=emus.twin,
        stability=lambda x: stability_preflight(emus.twin, x),
    )
    backend.emulators = emus  # type: ignore[attr-defined]  # for tests and tools
    return backend



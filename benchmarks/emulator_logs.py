"""Reading the emulators' logs of a run: limits and slews on the wire, final safe states, phases, faults.

Used by ``stress_interrupts.py``. Every figure comes from what the emulators received
(``<name>.log``, one command per line with its receive time), their final outputs
(``<name>.state.json``) and their replies (``<name>.replies.json``), never from the
process under test.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

SOURCES = ("qdac", "board", "smu", "k2450")
CURRENT_SOURCES = ("keithley2450", "keithley2400", "keysight_b2900")
TOL = 1e-3  # relative slack on rates (emulator receive times vs the driver's monotonic clock)


# ------------------------------------------------------------------ limits, rates, as-found
def channel_rules(protocol_path: Path, safety: dict) -> tuple[dict, dict]:
    """(instrument, channel) -> (low, high, step, rate), and the as-found levels of every source."""
    from aeqlab.backends.emulate import start_emulators
    from aeqlab.protocol import load_protocol

    protocol, _ = load_protocol(protocol_path)
    rules: dict[tuple[str, int], tuple[float, float, float, float]] = {}
    found: dict[tuple[str, int], float] = {}
    for name, cfg in protocol.instruments.items():
        current = cfg.driver in CURRENT_SOURCES
        lo, hi = cfg.current_range if current else cfg.voltage_range
        ramp = getattr(cfg, "ramp", None)
        step = float(getattr(ramp, "step", None) or np.inf) if ramp else np.inf
        rate = float(getattr(ramp, "rate", None) or np.inf) if ramp else np.inf
        rate = min(rate, safety["current_ramp_rate" if current else "voltage_ramp_rate"])
        for c in range(400):
            rules[(name, c)] = (float(lo), float(hi), step, rate)
    for role in ("inputs", "knobs", "nudges"):
        r = getattr(protocol.roles, role)
        if r.limits is None:
            continue
        for ref in r.refs():
            for c in range(ref.first, ref.last + 1):
                lo, hi, step, rate = rules[(ref.instrument, c)]
                rules[(ref.instrument, c)] = (max(lo, r.limits.low), min(hi, r.limits.high), step, rate)
    emus = start_emulators(protocol)
    try:
        for name, emu in emus.emulators.items():
            for c, v in enumerate(np.asarray(emu.output_state()["level"], float)):
                found[(name, c)] = float(v)
    finally:
        emus.stop()
    return rules, found


def sets(name: str, command: str) -> list[tuple[int, float]]:
    """(channel, value) pairs a logged command sets on a source (none for queries and other commands)."""
    if command.endswith("?") or " " not in command:
        return []
    head, _, arg = command.partition(" ")
    head = head.lstrip(":").upper()
    try:
        if name == "qdac" and head.startswith("SOUR") and head.endswith(":VOLT"):
            return [(int(head[4:-5]) - 1, float(arg))]
        if name == "board" and head in ("SET", "SETM"):
            chans, values = arg.split(" ", 1)
            ch: list[int] = []
            for part in chans.split(","):
                a, _, b = part.partition(":")
                ch.extend(range(int(a), int(b or a) + 1))
            return list(zip(ch, (float(v) for v in values.split(","))))
        if name == "smu" and head.startswith("SOUR") and head.endswith(":CURR"):
            return [(int(head[4:-5] or 1) - 1, float(arg))]
        if name == "k2450" and head == "SOUR:CURR:LEV":
            return [(0, float(arg))]
    except ValueError:
        return [(-1, float("nan"))]
    return []


def judge_logs(folder: Path, rules: dict, found: dict) -> dict:
    """Counts of out-of-limit values, slew/step excesses and unsafe final sources from one run's logs."""
    out = Counter()
    unsafe: list[str] = []
    untouched: list[str] = []
    for name in SOURCES:
        log = folder / f"{name}.log"
        state = folder / f"{name}.state.json"
        if not log.exists() or not state.exists():
            out["missing_logs"] += 1  # the run stopped before its emulators started (nothing was driven)
            continue
        rows = [line.split("\t", 1) for line in log.read_text().splitlines() if "\t" in line]
        if not rows:
            continue
        t_first = float(rows[0][0])
        last: dict[int, tuple[float, float]] = {}
        for t_text, command in rows:
            t = float(t_text)
            for c, v in sets(name, command):
                lo, hi, step, rate = rules.get((name, c), (np.nan, np.nan, np.inf, np.inf))
                if not lo <= v <= hi:
                    out["outside_limit"] += 1
                    continue
                t0, v0 = last.get(c, (t_first, found.get((name, c), 0.0)))
                dv = abs(v - v0)
                if dv > step * (1 + 1e-9) + 1e-15:
                    out["step_above_ramp"] += 1
                if dv and (t <= t0 or dv / (t - t0) > rate * (1 + TOL)):
                    out["slew_above_rate"] += 1
                last[c] = (t, v)
        final = json.loads(state.read_text())
        level, on = np.asarray(final.get("level", []), float), np.asarray(final.get("on", []), bool)
        if name in ("smu", "k2450"):
            bad = np.flatnonzero((level != 0) | on)
        else:
            safe = np.array([np.clip(0.0, *rules[(name, c)][:2]) for c in range(level.size)])
            bad = np.flatnonzero(level != safe)
        switched = any(" ON" in cmd.upper() or cmd.upper().endswith(" 1") for _, cmd in rows if "OUTP" in cmd.upper())
        for c in bad:
            # a channel this process never set (no level, no output switched on) and still as found was not driven
            if c not in last and not switched and level[c] == found.get((name, int(c)), 0.0):
                untouched.append(f"{name}/ch{int(c)}")
            else:
                unsafe.append(f"{name}/ch{int(c)}")
    return {"counts": out, "unsafe": unsafe, "untouched": untouched}


def phases(logs: Path, t_emu: float | None, t_end: float) -> tuple[float, ...]:
    """(emulators started, first level written, first safe-state step, last command, exit), from the logs.

    Training starts with the first input or knob level sent (QDAC ``:sourN:volt V``, board
    ``SET``/``SETM``); the safe state with the first level readback or output-off after that
    (training itself reads no source level back).
    """

    def rows(name: str):
        path = logs / f"{name}.log"
        for line in path.read_text().splitlines() if path.exists() else []:
            stamp, _, command = line.partition("\t")
            yield float(stamp), command

    t_train = min(
        [t for t, c in rows("qdac") if sets("qdac", c)] + [t for t, c in rows("board") if sets("board", c)],
        default=np.inf,
    )
    safe_step = {
        "board": lambda c: c.startswith("GETM_DAC") or c.startswith("GET_DAC"),
        "qdac": lambda c: c.lower().endswith(":volt?"),
        "smu": lambda c: (
            c.upper().endswith(":CURR?")
            or c.upper().replace(" ", "").endswith(("0", "OFF"))
            and c.upper().startswith(":OUTP")
        ),
        "k2450": lambda c: c.upper() in (":SOUR:CURR:LEV?", ":OUTP OFF"),
    }
    t_safe = min(
        (min((t for t, c in rows(n) if t > t_train and pred(c)), default=np.inf) for n, pred in safe_step.items()),
        default=np.inf,
    )
    t_last = max((t for n in SOURCES + ("dmm",) for t, _ in rows(n)), default=-np.inf)
    return (np.inf if t_emu is None else t_emu), t_train, t_safe, t_last, t_end


def phase_of(t: float | None, bounds: tuple[float, ...]) -> str:
    """Where a moment fell: start-up, training, safe state, exit (after the last command), or outside the run."""
    t_emu, t_train, t_safe, t_last, t_end = bounds
    if t is None:
        return "not reached"
    if t > t_end:
        return "after exit"
    if t < t_emu:
        return "before the emulators"
    if t > t_last:
        return "exit"
    return "start-up" if t < t_train else "training" if t < t_safe else "safe state"


def fault_fired(logs: Path, inst: str) -> float | None:
    path = logs / f"{inst}.replies.json"
    return json.loads(path.read_text()).get("fault_fired") if path.exists() else None

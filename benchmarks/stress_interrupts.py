"""Stress: Ctrl-C and instrument faults at seeded moments of ``--emulate`` runs, judged from the emulators' logs.

Not a test (it takes minutes). Each run is ``aeqlab run <protocol> --emulate --epochs 1``
on a copy of ``protocols/iris_bench_emulated.yaml`` with a small slice of iris
(``--train``/``--test`` samples) and declared safety slews, in its own process, with two interrupts drawn from one seed:

* a signal: one Ctrl-C (SIGINT) or a double one (a second 0–0.5 s later), at a moment
  drawn uniformly over the whole run (launch, start-up, training, safe state, exit);
* an instrument fault on one instrument, at a reply drawn uniformly over the replies
  of a whole run: a lost reply (timeout), two garbled replies, a mute spell (replies
  lost while commands still execute) or a hang-up (``AEQLAB_EMULATOR_FAULTS``).

From the emulators' own command logs and final output states (``AEQLAB_EMULATOR_LOG``)
it counts, over every run:

1. values sent outside a limit (role limits, else the instrument's range);
2. slews above the declared rate (the tighter of ``safety.*_ramp_rate`` and the
   instrument's ``ramp.rate``; steps above ``ramp.step``), timed by the emulator's
   receive times, the first move measured from the instrument's as-found value and
   the first command of the log;
3. sources not at their safe state at the end and not reported as unconfirmed (the
   session's ``safe_state`` must name the instrument); channels the process never set
   and that are still as found (a run stopped before it drove anything) are counted
   apart;
4. interrupted runs that ``aeqlab resume`` cannot finish (runs with nothing committed
   yet count as not resumable by design and are listed apart).

All four must be 0. Usage::

    nice -n 10 python benchmarks/stress_interrupts.py --runs 100 --seed 0 --out /tmp/stress
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "protocols" / "iris_bench_emulated.yaml"
SAFETY = {"voltage_ramp_rate": 200.0, "current_ramp_rate": 2.0e-3}  # V/s, A/s: tighter than some ramps
FAULTS = ("timeout", "garbled", "mute", "hangup")
SOURCES = ("qdac", "board", "smu", "k2450")
TOL = 1e-3  # relative slack on rates (emulator receive times vs the driver's monotonic clock)


def write_protocol(folder: Path, train: int, test: int) -> Path:
    """The emulated iris protocol on a small stratified slice of iris (short runs), with declared slews."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(0)
    n = train + test
    pick = np.concatenate([rng.permutation(np.flatnonzero(y == k))[: n // 3 + (k < n % 3)] for k in range(3)])
    rows = ["a,b,c,d,label"] + [",".join(f"{v:g}" for v in x[i]) + f",{y[i]}" for i in rng.permutation(pick)]
    (folder / "iris_small.csv").write_text("\n".join(rows) + "\n")
    p = yaml.safe_load(BASE.read_text())
    p["dataset"] = {
        "path": str(folder.resolve() / "iris_small.csv"),
        "test_size": test,
        "seed": 0,
        "input_range": [-1.0, 1.0],
        "feature_range": [0.0, 8.0],
    }
    p["safety"] = dict(SAFETY)
    path = folder / "stress.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


# ------------------------------------------------------------------ limits, rates, as-found
def channel_rules(protocol_path: Path) -> tuple[dict, dict]:
    """(instrument, channel) -> (low, high, step, rate), and the as-found levels of every source."""
    from aeqlab.backends.hardware import start_emulators

    from aeqlab.protocol import load_protocol

    protocol, _ = load_protocol(protocol_path)
    rules: dict[tuple[str, int], tuple[float, float, float, float]] = {}
    found: dict[tuple[str, int], float] = {}
    for name, cfg in protocol.instruments.items():
        current = cfg.driver in ("keithley2450", "keithley2400", "keysight_b2900")
        lo, hi = cfg.current_range if current else cfg.voltage_range
        ramp = getattr(cfg, "ramp", None)
        step = float(getattr(ramp, "step", None) or np.inf) if ramp else np.inf
        rate = float(getattr(ramp, "rate", None) or np.inf) if ramp else np.inf
        rate = min(rate, SAFETY["current_ramp_rate" if current else "voltage_ramp_rate"])
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


# ------------------------------------------------------------------ running
def env_for(logs: Path | None, faults: dict | None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("AEQLAB_EMULATOR_FAULTS", None)
    env.pop("AEQLAB_EMULATOR_LOG", None)
    if logs is not None:
        env["AEQLAB_EMULATOR_LOG"] = str(logs)
    if faults:
        env["AEQLAB_EMULATOR_FAULTS"] = json.dumps(faults)
    return env


def run_once(protocol: Path, out: Path, logs: Path, faults: dict | None, signals: list[float]) -> dict:
    """One run; ``signals`` are seconds after launch to send SIGINT at. Returns times and outcome."""
    cmd = [sys.executable, "-m", "aeqlab", "run", str(protocol), "--emulate", "--epochs", "1", "--out", str(out)]
    cmd.append("--json")
    t_launch = time.time()
    proc = subprocess.Popen(
        cmd,
        env=env_for(logs, faults),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a background shell starts us with SIGINT ignored, which children inherit: Ctrl-C must reach the run
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    sent: list[float] = []
    for at in signals:
        while proc.poll() is None and time.time() - t_launch < at:
            time.sleep(0.005)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGINT)
        sent.append(time.time())
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    t_end = time.time()
    summary = None
    for line in stdout.splitlines()[::-1]:
        if line.startswith("{"):
            summary = json.loads(line)
            break
    runs = sorted(out.glob("*/summary.json"))
    if summary is None and runs:
        summary = json.loads(runs[-1].read_text())
    return {
        "t_launch": t_launch,
        "t_end": t_end,
        "sent": sent,
        "code": proc.returncode,
        "summary": summary,
        "stderr": stderr[-600:],
    }


def landed(t: float, logs: Path) -> str:
    """Where a signal sent at wall time t landed, from the logs' first command, first knob write, first output-off."""

    def first(name: str, pred) -> float:
        path = logs / f"{name}.log"
        if not path.exists():
            return np.inf
        for line in path.read_text().splitlines():
            stamp, _, command = line.partition("\t")
            if pred(command):
                return float(stamp)
        return np.inf

    t_connect = min(first(n, lambda c: True) for n in SOURCES + ("dmm",))
    t_train = first("board", lambda c: c.startswith("SETM"))
    t_safe = min(
        first("k2450", lambda c: c.upper() == ":OUTP OFF"), first("smu", lambda c: c.upper().startswith(":OUTP1 0"))
    )
    if t < t_connect:
        return "launch"
    if t < t_train:
        return "start-up"
    if t < t_safe:
        return "training"
    return "safe state/exit"


def reply_count(name: str, log: Path) -> int:
    """Replies an instrument sent in a run, from its log (a board line always gets one)."""
    if not log.exists():
        return 0
    lines = log.read_text().splitlines()
    return len(lines) if name == "board" else sum(1 for line in lines if line.endswith("?"))


def resumable(run_dir: Path) -> bool:
    cmd = [sys.executable, "-m", "aeqlab", "resume", str(run_dir), "--json"]
    proc = subprocess.run(cmd, env=env_for(None, None), capture_output=True, text=True, timeout=600)
    return proc.returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100, help="runs (each carries a signal and an instrument fault)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=12, help="training samples per run")
    ap.add_argument("--test", type=int, default=6, help="test samples per run")
    ap.add_argument("--out", type=Path, default=Path("stress-interrupts"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    protocol = write_protocol(args.out, args.train, args.test)
    rules, found = channel_rules(protocol)

    # one clean run: how long a run lasts and how many replies each instrument sends
    # (the shortest of three: a busy machine must not stretch the window signals are drawn from past the runs)
    bases = [run_once(protocol, args.out / f"base{k}", args.out / "base-logs", None, []) for k in range(3)]
    base = min(bases, key=lambda b: b["t_end"] - b["t_launch"])
    duration = base["t_end"] - base["t_launch"]
    replies = {}
    for name in SOURCES + ("dmm",):
        replies[name] = max(1, reply_count(name, args.out / "base-logs" / f"{name}.log"))
    print(f"clean run: {duration:.1f} s, replies per instrument {replies}, status {base['summary']['status']}")

    rng = np.random.default_rng(args.seed)
    totals, where, faults_at = Counter(), Counter(), Counter()
    fired = 0
    unreported: list[str] = []
    untouched: list[str] = []
    not_resumable: list[str] = []
    nothing_committed = 0
    for i in range(args.runs):
        inst = str(rng.choice(list(replies)))
        kind = str(rng.choice(FAULTS))
        at = int(rng.integers(1, replies[inst] + 1))
        fault = {inst: [kind, at, 2 if kind == "garbled" else 1]}
        t_sig = float(rng.uniform(0.0, duration))
        double = bool(rng.integers(0, 2))
        signals = [t_sig, t_sig + float(rng.uniform(0.0, 0.5))] if double else [t_sig]
        logs = args.out / f"run{i:03d}-logs"
        res = run_once(protocol, args.out / f"run{i:03d}", logs, fault, signals)
        label = "double Ctrl-C" if double else "Ctrl-C"
        spot = landed(res["sent"][0], logs) if res["sent"] else "after exit"
        where[f"{label}: {spot}"] += 1
        third = ("first", "middle", "last")[min(2, int(3 * (at - 1) / replies[inst]))]
        faults_at[f"{kind} ({inst}) in the {third} third of its replies"] += 1
        fired += reply_count(inst, logs / f"{inst}.log") >= at  # the run got that far: the fault happened
        judged = judge_logs(logs, rules, found)
        totals.update(judged["counts"])
        untouched += [f"run{i:03d} {ch}" for ch in judged["untouched"]]
        summary = res["summary"] or {}
        safe = str(summary.get("safe_state", "unknown"))
        for ch in judged["unsafe"]:
            if safe in ("ok", "safe") or ch.split("/")[0] not in safe:
                unreported.append(f"run{i:03d} {ch} (safe_state: {safe[:80]})")
        status = summary.get("status")
        if status != "completed":
            run_dirs = sorted((args.out / f"run{i:03d}").glob("*/"))
            if "nothing to resume" in str(summary.get("resume", "")) or not run_dirs:
                nothing_committed += 1
            elif not resumable(run_dirs[-1]):
                not_resumable.append(f"run{i:03d}")
        print(
            f"run {i:3d}: {label:13s} at {t_sig:5.2f} s ({spot}), {kind:7s} on {inst:5s} at reply {at:5d}: "
            f"exit {res['code']}, {status}, safe_state {safe[:60]!r}",
            flush=True,
        )

        if (i + 1) % 10 == 0:
            print(
                f"  after {i + 1} runs: outside {totals['outside_limit']}, slews {totals['slew_above_rate']}, "
                f"unreported unsafe {len(unreported)}, not resumable {len(not_resumable)}, faults reached {fired}",
                flush=True,
            )

    signals_landed = sum(n for k, n in where.items() if not k.endswith("after exit"))
    print("\nwhere the signals landed:")
    for k, n in sorted(where.items()):
        print(f"  {k}: {n}")
    print("where the faults were scheduled:")
    for k, n in sorted(faults_at.items()):
        print(f"  {k}: {n}")
    print(
        f"\nruns {args.runs}; interrupts {2 * args.runs} ({args.runs} signals, {signals_landed} of them before exit; "
        f"{args.runs} instrument faults, {fired} of them reached before the run ended)"
    )
    print(f"values sent outside a limit:                 {totals['outside_limit']}")
    print(
        f"slews above the declared rate:               {totals['slew_above_rate']} (steps above ramp.step: "
        f"{totals['step_above_ramp']})"
    )
    print(f"sources not safe at the end and unreported:  {len(unreported)} {unreported[:5]}")
    print(
        f"interrupted runs not resumable:              {len(not_resumable)} {not_resumable[:5]} "
        f"(nothing committed yet, nothing to resume: {nothing_committed})"
    )
    print(f"runs stopped before any emulator started:    {totals['missing_logs'] // len(SOURCES)}")


if __name__ == "__main__":
    main()

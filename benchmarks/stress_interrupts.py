"""Stress: Ctrl-C and instrument faults at seeded moments of ``--emulate`` runs, judged from the emulators' logs.

Not a test (it takes minutes). Each run is ``aeqlab run <protocol> --emulate --epochs 1``
on a copy of ``protocols/iris_bench_emulated.yaml`` with a small slice of iris
(``--train``/``--test`` samples) and declared safety slews, in its own process, with two
interrupts drawn from one seed. Moments are seconds after the run's emulators started
(``started.json`` in ``AEQLAB_EMULATOR_LOG``), drawn over the span clean runs take from
there to exit: start-up (connecting, checks, the stability preflight, configuring the
sources), training and the final safe state. The interpreter's launch, before any
instrument exists, is left out.

* a signal: one Ctrl-C (SIGINT) or a double one (a second 0–0.5 s later);
* an instrument fault on one instrument (``AEQLAB_EMULATOR_FAULTS``): a lost reply
  (timeout), two garbled replies, a mute spell (replies lost while commands still
  execute) or a hang-up. It is armed at the reply the clean run reached at a moment
  drawn before the signal or within the safe state it starts, so that the run reaches
  it; the emulator records when it acted.

Landings are read from each run's logs: start-up until the first input or knob level
is sent, training until the first level readback or output-off, then the safe state.
From the emulators' command logs and final output states it counts, over every run and
every resume:

1. values sent outside a limit (role limits, else the instrument's range);
2. slews above the declared rate (the tighter of ``safety.*_ramp_rate`` and the
   instrument's ``ramp.rate``; steps above ``ramp.step``), timed by the emulator's
   receive times, the first move measured from the instrument's as-found value;
3. sources not at their safe state at the end and not reported as unconfirmed (the
   session's ``safe_state`` must name the instrument); channels never set and still as
   found are counted apart;
4. interrupted runs that ``aeqlab resume`` cannot finish (runs with nothing committed
   count apart).

All four must be 0. Usage::

    nice -n 10 python benchmarks/stress_interrupts.py --runs 110 --jobs 2 --seed 0 --out /tmp/stress
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml
from emulator_logs import CURRENT_SOURCES, SOURCES, channel_rules, fault_fired, judge_logs, phase_of, phases

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "protocols" / "iris_bench_emulated.yaml"
SAFETY = {"voltage_ramp_rate": 200.0, "current_ramp_rate": 2.0e-3}  # V/s, A/s: tighter than some ramps
FAULTS = ("timeout", "garbled", "mute", "hangup")
LANDED = ("start-up", "training", "safe state", "exit")  # phases of a live run (exit: after the last command)


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
    for cfg in p["instruments"].values():  # an instrument ramp faster than the safety slew is refused: clip it
        ramp = cfg.get("ramp")
        if ramp and "rate" in ramp:
            current = cfg["driver"] in CURRENT_SOURCES
            ramp["rate"] = min(float(ramp["rate"]), SAFETY["current_ramp_rate" if current else "voltage_ramp_rate"])
    path = folder / "stress.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


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


def run_once(cmd: list[str], logs: Path, faults: dict | None, signals: list[float], anchor: str = "started") -> dict:
    """One process; ``signals`` are seconds after ``<anchor>.json`` appears in its log folder to send SIGINT at.

    The anchor is ``started`` (its emulators serve) or ``fault-<name>`` (that emulator's fault acted).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "aeqlab", *cmd, "--json"],
        env=env_for(logs, faults),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a background shell starts us with SIGINT ignored, which children inherit: Ctrl-C must reach the run
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    marker, started = logs / f"{anchor}.json", logs / "started.json"
    while signals and proc.poll() is None and not marker.exists():
        time.sleep(0.002)
    t0 = json.loads(marker.read_text())["time"] if marker.exists() else None
    sent: list[float] = []
    for at in signals if t0 is not None else []:
        while proc.poll() is None and time.time() - t0 < at:
            time.sleep(0.002)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGINT)
        sent.append(time.time())
    try:
        stdout, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, _ = proc.communicate()
    summary = next((json.loads(x) for x in stdout.splitlines()[::-1] if x.startswith("{")), None)
    t_emu = json.loads(started.read_text())["time"] if started.exists() else None
    return {"t_emu": t_emu, "t_end": time.time(), "sent": sent, "code": proc.returncode, "summary": summary}


def committed(run_dir: Path) -> int:
    """Samples the run's journal holds (0 without a journal: it stopped before creating one)."""
    import sqlite3

    if not (run_dir / "journal.sqlite").is_file():
        return 0
    con = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM samples").fetchone()[0])
    except sqlite3.Error:
        return -1  # unreadable: resume must say so, and is counted as not resumable if it cannot finish
    finally:
        con.close()


def stressed(task: dict, protocol: Path, rules: dict, found: dict) -> dict:
    """One run with its signal and fault, judged; then ``aeqlab resume`` (judged too) when it did not complete."""
    i, out = task["i"], task["out"]
    logs = out / f"run{i:03d}-logs"
    anchor = f"fault-{task['inst']}" if task["fault_first"] else "started"
    cmd = ["run", str(protocol), "--emulate", "--epochs", "1", "--out", str(out / f"run{i:03d}")]
    res = run_once(cmd, logs, task["fault"], task["signals"], anchor)
    bounds = phases(logs, res["t_emu"], res["t_end"])
    judged = [judge_logs(logs, rules, found)]
    run_dirs = sorted((out / f"run{i:03d}").glob("*/"))
    if res["summary"] is None and run_dirs and (run_dirs[-1] / "summary.json").is_file():
        res["summary"] = json.loads((run_dirs[-1] / "summary.json").read_text())
    summary = res["summary"] or {}
    resumed = None
    if summary.get("status") != "completed" and run_dirs and committed(run_dirs[-1]):
        again = run_once(["resume", str(run_dirs[-1])], out / f"run{i:03d}-resume-logs", None, [])
        judged.append(judge_logs(out / f"run{i:03d}-resume-logs", rules, found))
        resumed = (again["summary"] or {}).get("status") == "completed"
    return {
        **task,
        "res": res,
        "judged": judged,
        "resumed": resumed,
        "signal_at": [phase_of(t, bounds) for t in res["sent"]],
        "fault_at": phase_of(fault_fired(logs, task["inst"]), bounds),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=110, help="runs (each carries a signal and an instrument fault)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (each is mostly waiting on its instruments)")
    ap.add_argument("--train", type=int, default=12, help="training samples per run")
    ap.add_argument("--test", type=int, default=6, help="test samples per run")
    ap.add_argument("--out", type=Path, default=Path("stress-interrupts"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    protocol = write_protocol(args.out, args.train, args.test)
    rules, found = channel_rules(protocol, SAFETY)
    t0 = time.time()

    # clean runs, as many at once as the stress will run: how long a run lasts from its emulators' start,
    # its safe state's length, and when each instrument's replies come (faults are armed at a reply)
    with ThreadPoolExecutor(args.jobs) as pool:
        bases = list(
            pool.map(
                lambda k: run_once(
                    ["run", str(protocol), "--emulate", "--epochs", "1", "--out", str(args.out / f"base{k}")],
                    args.out / f"base{k}-logs",
                    None,
                    [],
                ),
                range(max(2, args.jobs)),
            )
        )
    spans, safes = [], []
    for k, b in enumerate(bases):
        bounds = phases(args.out / f"base{k}-logs", b["t_emu"], b["t_end"])
        spans.append(bounds[4] - bounds[0])
        safes.append(bounds[3] - bounds[2])
    k_ref = int(np.argsort(spans)[len(spans) // 2])
    duration, safe_window = float(np.median(spans)), float(np.median(safes))
    reply_times = {}
    for name in SOURCES + ("dmm",):
        rec = json.loads((args.out / f"base{k_ref}-logs" / f"{name}.replies.json").read_text())
        reply_times[name] = np.asarray(rec["times"], float) - bases[k_ref]["t_emu"]
    ref = phases(args.out / f"base{k_ref}-logs", bases[k_ref]["t_emu"], bases[k_ref]["t_end"])
    t_safe_ref = ref[2] - ref[0]
    safe_replies = {n: max(1, int(np.sum(t >= t_safe_ref))) for n, t in reply_times.items()}
    print(
        f"clean runs: {duration:.1f} s from the emulators' start to exit (safe state {safe_window:.2f} s); "
        f"replies {dict((n, len(t)) for n, t in reply_times.items())}",
        flush=True,
    )

    rng = np.random.default_rng(args.seed)
    tasks = []
    for i in range(args.runs):  # every draw up front: the same seed gives the same moments whatever --jobs
        inst = str(rng.choice(list(reply_times)))
        kind = str(rng.choice(FAULTS))
        moment = float(rng.uniform(0.0, duration))  # the first interrupt's moment, uniform over the run
        double = bool(rng.integers(0, 2))
        gap = float(rng.uniform(0.0, 0.5))
        fault_first = bool(rng.integers(0, 2))
        then = float(rng.uniform(0.0, safe_window))  # the second one: within the safe state the first starts
        if fault_first:  # armed at the reply the clean run sent at that moment; the Ctrl-C follows it
            at = 1 + int(np.searchsorted(reply_times[inst], moment))
            t_sig = then
        else:  # the Ctrl-C first; the fault at one of the replies a safe state brings
            at = 1 + int(np.searchsorted(reply_times[inst], moment)) + int(rng.integers(0, safe_replies[inst]))
            t_sig = moment
        fault = {inst: [kind, at, 2 if kind == "garbled" else 1]}
        signals = [t_sig, t_sig + gap] if double else [t_sig]
        tasks.append(
            {
                "i": i,
                "out": args.out,
                "inst": inst,
                "kind": kind,
                "fault": fault,
                "at": at,
                "signals": signals,
                "label": "double Ctrl-C" if double else "Ctrl-C",
                "fault_first": fault_first,
            }
        )

    totals, where, second, faults_at = Counter(), Counter(), Counter(), Counter()
    unreported: list[str] = []
    untouched: list[str] = []
    not_resumable: list[str] = []
    nothing_committed, unjudged, missing = 0, 0, []
    with ThreadPoolExecutor(args.jobs) as pool:
        for n, r in enumerate(pool.map(lambda t: stressed(t, protocol, rules, found), tasks), 1):
            i, res, summary = r["i"], r["res"], r["res"]["summary"] or {}
            spot = r["signal_at"][0] if r["signal_at"] else "after exit"
            where[f"{r['label']}: {spot}"] += 1
            if r["label"] == "double Ctrl-C":
                second[r["signal_at"][1] if len(r["signal_at"]) > 1 else "after exit"] += 1
            faults_at[f"{r['kind']}: {r['fault_at']}"] += 1
            for j, what in zip(r["judged"], ("", " resume")):
                totals.update(j["counts"])
                if j["counts"]["missing_logs"]:
                    unjudged += 1
                    missing.append(f"run{i:03d}{what}")
                untouched += [f"run{i:03d} {ch}" for ch in j["untouched"]]
            safe = str(summary.get("safe_state", "unknown"))
            for ch in r["judged"][0]["unsafe"]:
                if safe in ("ok", "safe") or ch.split("/")[0] not in safe:
                    unreported.append(f"run{i:03d} {ch} (safe_state: {safe[:80]})")
            for ch in r["judged"][1]["unsafe"] if len(r["judged"]) > 1 else []:
                unreported.append(f"run{i:03d} resume {ch}")
            if summary.get("status") != "completed" and r["resumed"] is None:
                nothing_committed += 1
            elif r["resumed"] is False:
                not_resumable.append(f"run{i:03d}")
            what = ("fault, " if r["fault_first"] else "") + r["label"]
            print(
                f"run {i:3d}: {what:20s} at {r['signals'][0]:5.2f} s ({spot}), {r['kind']:7s} on "
                f"{r['inst']:5s} at reply {r['at']:4d} ({r['fault_at']}): exit {res['code']}, "
                f"{summary.get('status')}, safe_state {safe[:50]!r}, resumed {r['resumed']}",
                flush=True,
            )
            if n % 10 == 0:
                print(
                    f"  after {n} runs: outside {totals['outside_limit']}, slews {totals['slew_above_rate']}, "
                    f"unreported unsafe {len(unreported)}, not resumable {len(not_resumable)}",
                    flush=True,
                )

    landed = sum(v for k, v in where.items() if k.split(": ")[1] in LANDED)
    reached = sum(v for k, v in faults_at.items() if k.split(": ")[1] in LANDED)
    print("\nwhere the signals landed (the first Ctrl-C of each run):")
    for k, v in sorted(where.items()):
        print(f"  {k}: {v}")
    print("where the second Ctrl-C of a double landed:")
    for k, v in sorted(second.items()):
        print(f"  {k}: {v}")
    print("where the faults acted (the emulator's first faulty reply):")
    for k, v in sorted(faults_at.items()):
        print(f"  {k}: {v}")
    print(
        f"\nruns {args.runs}, wall "
        f"{(time.time() - t0) / 60:.1f} min; interrupts landed {landed + reached}: {landed} of {args.runs} "
        f"signals while the run was alive, {reached} of {args.runs} faults reached"
    )
    print(f"values sent outside a limit:                 {totals['outside_limit']}")
    print(
        f"slews above the declared rate:               {totals['slew_above_rate']} "
        f"(steps above ramp.step: {totals['step_above_ramp']})"
    )
    print(f"sources not safe at the end and unreported:  {len(unreported)} {unreported[:5]}")
    print(
        f"interrupted runs not resumable:              {len(not_resumable)} {not_resumable[:5]} "
        f"(nothing committed, nothing to resume: {nothing_committed})"
    )
    print(f"never-driven channels left as found:         {len(untouched)} {untouched[:3]}")
    print(f"processes whose emulator logs are missing:    {unjudged} {missing[:8]} (not judged)")


if __name__ == "__main__":
    main()

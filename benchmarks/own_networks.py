"""Users' own networks trained with ``aeqlab advise``'s recommendation (docs/benchmarks.md, *Your own networks*).

For each example network (moons 2-12-2 and sine 1-16-1 from CSV files, and wine 13-16-3,
a network advise was not developed on), as a new user would, through the command line:

1. copy the example protocol and its data into a fresh folder;
2. ``aeqlab advise PROTOCOL --write ADVISED``;
3. ``aeqlab run ADVISED --sim --json``: the test score, unconverged homeostasis,
   rollbacks and ``params_sha256``;
4. the same run again, stopped with SIGINT about halfway through, then
   ``aeqlab resume RUN --json`` from another working directory: its ``params_sha256`` must
   be the uninterrupted one.

    python benchmarks/own_networks.py [--networks sine wine moons] [--epochs N]

Prints a table; about 3 minutes on one core for the three networks.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aeqlab.tools.advise import apply_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {"moons": "moons_hopfield_sim.yaml", "sine": "sine_hopfield_sim.yaml", "wine": "wine_hopfield_sim.yaml"}
AEQLAB = [sys.executable, "-m", "aeqlab"]


def cli(args: list[str], cwd: Path) -> dict:
    """Run an aeqlab command with ``--json``; its summary (the last stdout line)."""
    done = subprocess.run([*AEQLAB, *args, "--json"], cwd=cwd, capture_output=True, text=True)
    out = done.stdout.strip()
    if not out:
        raise SystemExit(f"aeqlab {' '.join(args)} printed no summary: {done.stderr.strip()[-300:]}")
    try:
        return json.loads(out)  # advise prints one indented object
    except json.JSONDecodeError:
        return json.loads(out.splitlines()[-1])  # run and resume: the summary is the last line


def interrupted(protocol: Path, cwd: Path, after_s: float) -> dict:
    """The run stopped by SIGINT after ``after_s`` seconds: its summary."""
    proc = subprocess.Popen(
        [*AEQLAB, "run", str(protocol), "--sim", "--json"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    time.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=600)
    return json.loads(out.decode().strip().splitlines()[-1])


def network(name: str, work: Path, epochs: int | None) -> dict:
    folder = work / name
    folder.mkdir()
    shutil.copy(ROOT / "protocols" / EXAMPLES[name], folder / "protocol.yaml")
    shutil.copytree(ROOT / "protocols" / "data", folder / "data")
    if epochs:  # the schedule advise projects ρ to
        text = (folder / "protocol.yaml").read_text(encoding="utf-8")
        (folder / "protocol.yaml").write_text(apply_settings(text, {"schedule.epochs": epochs}), encoding="utf-8")
    advice = cli(["advise", "protocol.yaml", "--write", "advised.yaml"], folder)
    t0 = time.perf_counter()
    whole = cli(["run", "advised.yaml", "--sim", "--out", "runs-whole"], folder)
    wall = time.perf_counter() - t0
    stopped = interrupted(folder / "advised.yaml", folder, max(1.0, 0.5 * wall))
    elsewhere = work / f"{name}-elsewhere"
    elsewhere.mkdir()
    run_dir = Path(stopped["run_dir"])
    resumed = cli(["resume", str(run_dir if run_dir.is_absolute() else folder / run_dir)], elsewhere)
    settings = advice.get("settings", {})
    return {"network": name, "settings": settings, "whole": whole, "stopped": stopped, "resumed": resumed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--networks", nargs="+", choices=sorted(EXAMPLES), default=["sine", "wine", "moons"])
    parser.add_argument("--epochs", type=int, default=None, help="override each protocol's schedule.epochs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [network(name, Path(tmp), args.epochs) for name in args.networks]
    print("| network | advise recommends | test | unconverged | rollbacks | interrupted at | resumed sha = whole |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        s, w = r["settings"], r["whole"]
        eps = s.get("simulation.epsilon.weights", "-")
        score = w.get("test_r2", w.get("test_accuracy"))
        same = r["resumed"].get("params_sha256") == w.get("params_sha256")
        print(
            f"| {r['network']} | ε weights {eps}, β {s.get('method.beta', '-')} | {score:.3f} | "
            f"{w.get('homeostasis_unconverged')} | {w.get('rollbacks') or 0} | {r['stopped'].get('samples')} | "
            f"{'yes' if same else 'NO'} ({str(w.get('params_sha256'))[:8]}…) |"
        )


if __name__ == "__main__":
    main()

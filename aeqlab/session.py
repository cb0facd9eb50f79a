"""One training run from start to finish: backend, run folder, progress, summary."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from aeqlab.backends import Backend, open_backend
from aeqlab.datasets import load
from aeqlab.engine import Trainer
from aeqlab.errors import ProtocolError
from aeqlab.progress import Progress
from aeqlab.protocol import Protocol
from aeqlab.store import RunStore, params_sha256, versions


@dataclass
class RunRequest:
    protocol_path: Path
    protocol: Protocol
    text: str
    kind: str
    epochs: int | None = None
    seed: int | None = None
    out: Path | None = None


def preflight(protocol: Protocol, backend: Backend, x_train: np.ndarray, where: str) -> float | None:
    """On a twin, refuse to start when the joint equilibrium is already unstable."""
    if backend.twin is None:
        return None
    from aeqlab.compose import stability_preflight

    rho = stability_preflight(backend.twin, x_train)
    if rho >= 1.0:
        eps = protocol.simulation.epsilon
        raise ProtocolError(
            f"the twin is unstable at its starting parameters: stability ratio rho = {rho:.2f} >= 1 "
            f"with epsilon weights {eps.weights}, biases {eps.biases}",
            where=f"{where}: simulation.epsilon",
            hint=f"scale every epsilon by {0.6 / rho:.2g} or less",
        )
    return rho


def run_training(req: RunRequest, console: Console) -> dict[str, Any]:
    """Train as the protocol says; return the summary (also written to the run folder)."""
    protocol = req.protocol
    n_epochs = req.epochs or protocol.schedule.epochs
    run_seed = protocol.seed if req.seed is None else req.seed
    data = load(protocol.dataset)
    backend = open_backend(protocol, req.kind)
    try:
        rho = preflight(protocol, backend, data.x_train, str(req.protocol_path))
        store = RunStore(req.out or protocol.output.dir, protocol.name)
        protocol_hash = store.write_protocol(req.text)
        started = time.time()
        store.write_json(
            "run.json",
            {
                "protocol": str(req.protocol_path),
                "protocol_sha256": protocol_hash,
                "backend": req.kind,
                "seed": run_seed,
                "epochs": n_epochs,
                "versions": versions(),
                "instruments": backend.bench.identities(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "preflight_rho": rho,
            },
        )
        progress = Progress(console, n_epochs, len(data.y_train))

        def on_epoch(m) -> None:
            progress.epoch(m)
            store.append_metrics(m.as_dict())

        trainer = Trainer(protocol, backend.bench, data, on_sample=progress.sample, on_epoch=on_epoch)
        status = "failed"
        t0 = time.perf_counter()
        summary: dict[str, Any] = {"run_dir": str(store.path)}
        try:
            with progress:
                initial, history = trainer.run(n_epochs, run_seed)
            status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            wall = time.perf_counter() - t0
            if trainer.state is not None:
                store.write_params(trainer.state.targets)
            summary.update({"status": status, "wall_s": round(wall, 3)})
            if status != "completed":
                store.write_json("summary.json", summary)
        last = history[-1]
        samples = trainer.samples_done
        summary.update(
            {
                "protocol": protocol.name,
                "backend": req.kind,
                "epochs": n_epochs,
                "samples": samples,
                "seed": run_seed,
                "initial_test_accuracy": initial.accuracy,
                "initial_test_loss": initial.loss,
                "train_accuracy": last.train_accuracy,
                "test_accuracy": last.test_accuracy,
                "test_loss": last.test_loss,
                "best_test_accuracy": max(m.test_accuracy for m in history),
                "params_sha256": params_sha256(trainer.state.targets),
                "samples_per_s": round(samples / wall, 2) if wall > 0 else None,
                "homeostasis_iterations_mean": float(np.mean([m.homeostasis_iterations for m in history])),
                "homeostasis_unconverged": int(sum(m.homeostasis_unconverged for m in history)),
                "knob_saturations": int(sum(m.saturated for m in history)),
                "round_trips_per_sample": {
                    k: round(v / max(samples, 1), 2) for k, v in backend.bench.round_trips.items()
                },
                **backend.diagnostics(),
            }
        )
        store.write_json("summary.json", summary)
        console.print(
            f"done: test accuracy {initial.accuracy:.3f} -> {last.test_accuracy:.3f}, "
            f"{samples} samples in {wall:.1f} s; run folder {store.path}"
        )
        return summary
    finally:
        backend.close()

"""aeqlab's dry run against a numpy port of the reference Aeqprop code, CPU time per training sample.

The reference is the official code of Agnostic Equilibrium Propagation
(github.com/bscellier/agnostic-equilibrium-propagation, PyTorch). Its per-sample
algorithm, as read in these files of that repository:

* ``training/epoch.py`` (``Trainer.run``): per example, ``set_data`` (the states are kept
  from the previous training example; evaluation resets them to zero), ``inference``,
  then ``training_step``;
* ``training/sgd.py`` (``Aeqprop``): inference relaxes at nudging 0 with the parameters
  fixed (forward layer order); the training step remembers that free state, relaxes at
  the first nudging (backward order) and *adjusts the control knobs analytically*, then
  restarts from the free state at the second nudging (backward order), followed by one
  clamped relaxation (``max_iterations_params = 1``); centered: nudgings −β/2 and +β/2;
* ``network/network.py`` (``homeostatic_relaxation``, ``clamped_relaxation``,
  ``_relax_layers``, ``_relax_params``): up to ``max_iterations`` (100) sweeps of exact
  layer-wise minimisation, stopping when every layer's L1 change is below its threshold
  (1e-3, ``hyperparameters.py``); a clamped relaxation is one backward layer sweep, then
  every parameter set to its own minimum;
* ``network/variable/layer.py`` (``Layer.compute_min``): each layer's energy is quadratic
  given the others; its minimiser is clipped to the layer's interval;
* ``network/variable/parameter.py`` (``Parameter.compute_min``: θ = (u − ε·b)/(1 + 2ε·a),
  with a = 0 for weights and biases, E being linear in them; ``DenseWeight.init_state``:
  half Xavier-uniform with a gain per layer, biases zero);
* ``network/variable/control.py`` (``ControlKnob.adjust``: u = θ + ε·∂E/∂θ at the present
  states: homeostasis computed analytically, no feedback loop);
* ``network/cost.py`` (``SquaredError``: β·½‖o − y‖², which adds β/2 to the outputs'
  quadratic coefficient and −β·y to their linear one);
* ``network/interaction.py`` (the energy terms: ½‖s‖², −b·s, −s_preᵀW s_post).

The port below is written from that description (float64, batch 1), on the network and
data of ``protocols/digits_hopfield_sim.yaml``: 64-128-10, the protocol's couplings ε
(stable under aeqlab's joint physics; the reference's own 0.1 / 0.05 are not), β, its
initialisation (the same θ as the twin's, from the protocol's init seed) and its training
order. aeqlab trains the same protocol as a dry run (the twin behind simulated
instruments, homeostasis and tracking nudging as feedback loops through the instruments,
the joint relaxation of states and parameters in the clamped phase). The two alternate in
chunks of ``--chunk`` samples in one process (A B A B ...), so both see the same load;
each figure is process CPU time per training sample (journal and evaluations excluded
for both). The ratio is what the bench procedure costs over the bare algorithm: aeqlab
measures every parameter through instruments and reaches homeostasis by iterating.

Usage::

    python benchmarks/speed_vs_reference.py                      # 300 samples each, chunks of 25
    python benchmarks/speed_vs_reference.py --samples 600 --chunk 50 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = ROOT / "protocols/digits_hopfield_sim.yaml"


class ReferencePort:
    """The reference's layered network and centered Aeqprop step, batch 1, in numpy.

    Energy E = ½Σ‖s_l‖² − Σ b_l·s_l − Σ s_{l-1}ᵀW_l s_l, plus β·½‖s_L − y‖² at the outputs;
    the parameters are held during the free and first phases and set to their minimum
    θ = u − ε∂E/∂θ once at the end of the second.
    """

    def __init__(self, layers, weights, biases, eps_w, eps_b, clips, beta, threshold=1e-3, max_iterations=100):
        self.W = [np.array(w, float) for w in weights]
        self.b = [np.array(b, float) for b in biases]
        self.eps_w, self.eps_b = list(eps_w), list(eps_b)
        self.clips = list(clips)
        self.beta = beta
        self.threshold, self.max_iterations = threshold, max_iterations
        self.s = [np.zeros(n) for n in layers[1:]]
        self.sweeps = 0

    def _layer_min(self, l: int, x: np.ndarray, nudging: float, y: np.ndarray) -> np.ndarray:
        """Exact minimiser of the energy in layer l given its neighbours, clipped."""
        pre = x if l == 0 else self.s[l - 1]
        lin = self.b[l] + pre @ self.W[l]
        quad = 1.0
        if l + 1 < len(self.s):
            lin = lin + self.W[l + 1] @ self.s[l + 1]
        else:  # squared-error nudging on the outputs
            lin = lin + nudging * y
            quad += nudging
        lo, hi = self.clips[l]
        return np.clip(lin / quad, lo, hi)

    def _relax(self, x, nudging, y, backward: bool, max_iterations: int, criterion: bool = True) -> int:
        order = range(len(self.s) - 1, -1, -1) if backward else range(len(self.s))
        it = 0
        while it < max_iterations:
            it += 1
            done = True
            for l in order:
                new = self._layer_min(l, x, nudging, y)
                if np.abs(new - self.s[l]).sum() >= self.threshold:
                    done = False
                self.s[l] = new
            if criterion and done:
                break
        self.sweeps += it
        return it

    def _grads(self, x):
        """∂E/∂θ at the present states: −s_{l-1} s_lᵀ for W_l, −s_l for b_l."""
        pre = [x] + self.s[:-1]
        return [-np.outer(p, q) for p, q in zip(pre, self.s)], [-q for q in self.s]

    def train_sample(self, x: np.ndarray, y: np.ndarray) -> None:
        beta = self.beta
        # inference: nudging 0, forward, parameters held
        self._relax(x, 0.0, y, backward=False, max_iterations=self.max_iterations)
        free = [s.copy() for s in self.s]
        # first phase (homeostatic): −β/2, backward; then the knobs are set analytically
        self._relax(x, -beta / 2, y, backward=True, max_iterations=self.max_iterations)
        gw, gb = self._grads(x)
        uw = [w + e * g for w, e, g in zip(self.W, self.eps_w, gw)]
        ub = [b + e * g for b, e, g in zip(self.b, self.eps_b, gb)]
        # second phase (clamped): from the free state, +β/2, backward, parameters held
        self.s = free
        self._relax(x, beta / 2, y, backward=True, max_iterations=self.max_iterations)
        # clamped relaxation, one iteration: a backward layer sweep, then the parameters at their minimum
        self._relax(x, beta / 2, y, backward=True, max_iterations=1, criterion=False)
        gw, gb = self._grads(x)
        self.W = [u - e * g for u, e, g in zip(uw, self.eps_w, gw)]
        self.b = [u - e * g for u, e, g in zip(ub, self.eps_b, gb)]

    def predict(self, x: np.ndarray) -> int:
        saved = self.s
        self.s = [np.zeros_like(s) for s in saved]  # evaluation starts from zero
        self._relax(x, 0.0, np.zeros_like(saved[-1]), backward=False, max_iterations=self.max_iterations)
        out = int(np.argmax(self.s[-1]))
        self.s = saved
        return out


def build(protocol_path: Path):
    """aeqlab's dry run and the port, from one protocol: the same initial θ, data and order."""
    from aeqlab.backends import open_backend
    from aeqlab.datasets import load
    from aeqlab.engine.trainer import Trainer
    from aeqlab.protocol import load_protocol
    from sim_backends.hopfield import HopfieldSpec, half_xavier, split_params

    protocol, _ = load_protocol(protocol_path)
    sim = protocol.simulation
    data = load(protocol.dataset)
    backend = open_backend(protocol, "sim")
    trainer = Trainer(protocol, backend.bench, data, oracle=backend.oracle)
    trainer.start()
    spec = HopfieldSpec(
        tuple(sim.layers),
        tuple(sim.epsilon.weights),
        tuple(sim.epsilon.biases),
        tuple(sim.hidden_clip),
        tuple(sim.output_clip),
    )
    theta0 = half_xavier(spec, tuple(sim.init.gains), np.random.default_rng(sim.init.seed))
    weights, biases = split_params(spec, theta0)
    clips = [spec.clip_bounds(l + 1) for l in range(spec.n_layers)]
    port = ReferencePort(spec.layers, weights, biases, spec.eps_weights, spec.eps_biases, clips, protocol.method.beta)
    targets = data.targets(data.y_train)
    return protocol, data, backend, trainer, port, targets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--protocol", type=Path, default=PROTOCOL)
    ap.add_argument("--samples", type=int, default=300, help="training samples timed for each")
    ap.add_argument("--chunk", type=int, default=25, help="samples per turn (A B A B ...)")
    ap.add_argument("--warmup", type=int, default=10, help="samples each trains before timing")
    ap.add_argument("--accuracy", action="store_true", help="also print both test accuracies at the end")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from aeqlab.engine.plan import execute
    from sim_backends.kernels import kernel_status

    with threadpool_limits(limits=1, user_api="blas"):
        protocol, data, backend, trainer, port, targets = build(args.protocol)
        beta = protocol.method.beta
        total = args.warmup + args.samples
        order = np.resize(np.random.default_rng(protocol.seed).permutation(len(targets)), total)

        def run_aeqlab(idx):
            for i in idx:
                execute(trainer.sample_plan(data.x_train[i], targets[i], beta), backend.bench)

        def run_port(idx):
            for i in idx:
                port.train_sample(data.x_train[i], targets[i])

        run_aeqlab(order[: args.warmup])
        run_port(order[: args.warmup])
        cpu = {"aeqlab": 0.0, "reference port": 0.0}
        per_chunk: dict[str, list[float]] = {k: [] for k in cpu}
        relax0 = backend.twin.stats.relaxations
        sweeps0 = port.sweeps
        for start in range(args.warmup, total, args.chunk):
            idx = order[start : min(start + args.chunk, total)]
            for name, fn in (("aeqlab", run_aeqlab), ("reference port", run_port)):
                t0 = time.process_time()
                fn(idx)
                dt = time.process_time() - t0
                cpu[name] += dt
                per_chunk[name].append(1e3 * dt / len(idx))
        n = args.samples
        ms = {k: 1e3 * v / n for k, v in cpu.items()}
        result: dict[str, Any] = {
            "protocol": str(args.protocol),
            "samples": n,
            "chunk": args.chunk,
            "kernel": kernel_status(),
            "cpu_ms_per_sample": ms,
            "median_chunk_ms_per_sample": {k: statistics.median(v) for k, v in per_chunk.items()},
            "ratio": ms["aeqlab"] / ms["reference port"],
            "twin_relaxations_per_sample": (backend.twin.stats.relaxations - relax0) / n,
            "port_sweeps_per_sample": (port.sweeps - sweeps0) / n,
        }
        if args.accuracy:
            hits = [port.predict(x) == y for x, y in zip(data.x_test, data.y_test)]
            result["port_test_accuracy"] = float(np.mean(hits))
            result["aeqlab_test_accuracy"] = float(trainer.evaluate(data.x_test, data.y_test).accuracy)
        backend.safe_state()
        backend.close()

    print(
        f"{args.protocol.name}: {n} training samples each, alternating in chunks of {args.chunk} "
        f"(twin kernel: {result['kernel']})"
    )
    print(
        f"  aeqlab dry run    {ms['aeqlab']:7.3f} ms CPU/sample  "
        f"({result['twin_relaxations_per_sample']:.1f} twin relaxations/sample)"
    )
    print(
        f"  reference port    {ms['reference port']:7.3f} ms CPU/sample  "
        f"({result['port_sweeps_per_sample']:.1f} layer sweeps/sample)"
    )
    print(f"  ratio aeqlab / reference port: {result['ratio']:.2f}")
    if args.accuracy:
        print(
            f"  test accuracy after these samples: aeqlab {result['aeqlab_test_accuracy']:.3f}, "
            f"port {result['port_test_accuracy']:.3f}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print("(CPU time of this process, BLAS limited to one thread)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The two-moons ceiling: the Bayes classifier on the protocol's test split, and runs on fresh points.

docs/benchmarks.md, *Your own networks*. The moons of ``protocols/data/moons.csv`` are
scikit-learn's ``make_moons(n_samples=400, noise=0.2, random_state=0)``: two half circles
with Gaussian noise of 0.2. The Bayes classifier of that distribution integrates each
class's likelihood along its arc and picks the larger. This prints its accuracy on the
protocol's 100 test points (what no classifier can be expected to beat there) and on
20,000 fresh points, then for each run folder given: its own test accuracy, this script's
reproduction of it, and its accuracy on the fresh points.

    python benchmarks/moons_ceiling.py [RUN_DIR ...]

The reproduction relaxes the `hopfield` twin's states with the run's final parameters held
(block-coordinate: hidden layer, then outputs, until nothing moves), independently of the
twin's own solver. Seconds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split

from aeqlab.api import load_protocol, open_run
from aeqlab.datasets import load

ROOT = Path(__file__).resolve().parents[1]
NOISE = 0.2
FRESH = make_moons(n_samples=20_000, noise=NOISE, random_state=123)


def bayes(x: np.ndarray) -> np.ndarray:
    """The class of larger likelihood under make_moons' generative model (4,000 points per arc)."""
    t = np.linspace(0.0, np.pi, 4000)
    arcs = (np.stack([np.cos(t), np.sin(t)], 1), np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
    like = [np.exp(-((x[:, None, :] - arc[None]) ** 2).sum(-1) / (2 * NOISE**2)).mean(1) for arc in arcs]
    return (like[1] > like[0]).astype(int)


def the_split(protocol_path: Path):
    """The raw train and test points of a moons protocol, checked against aeqlab's own loader."""
    protocol = load_protocol(protocol_path)
    cfg = protocol.dataset
    table = np.loadtxt(protocol_path.parent / cfg.path, delimiter=",", skiprows=1)  # x1, x2, label
    x, y = table[:, :2], table[:, 2].astype(int)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=cfg.test_size, random_state=cfg.seed, stratify=y)
    lo, hi = x_tr.min(0), x_tr.max(0)
    a, b = cfg.input_range

    def scale(v: np.ndarray) -> np.ndarray:
        return a + (b - a) * (v - lo) / (hi - lo)

    ours = load(cfg.model_copy(update={"validation": None}))
    assert np.allclose(ours.x_test, scale(x_te)) and (ours.y_test == y_te).all(), "not the protocol's split"
    return protocol, scale, (x_te, y_te)


def accuracy(run_dir: Path, scale, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the run's final parameters: the argmax of the outputs at the held-θ equilibrium."""
    sim = open_run(run_dir).protocol().simulation
    n_in, n_h, n_out = sim.layers
    theta = np.load(run_dir / "params.npy")
    cut = np.cumsum([n_in * n_h, n_h * n_out, n_h])
    w1, w2, b1, b2 = (
        theta[: cut[0]].reshape(n_in, n_h),
        theta[cut[0] : cut[1]].reshape(n_h, n_out),
        theta[cut[1] : cut[2]],
        theta[cut[2] :],
    )
    xs = scale(x)
    h, o = np.zeros((len(xs), n_h)), np.zeros((len(xs), n_out))
    for _ in range(5000):
        h_new = np.clip(xs @ w1 + b1 + o @ w2.T, *sim.hidden_clip)
        o_new = np.clip(h_new @ w2 + b2, *sim.output_clip)
        moved = max(np.abs(h_new - h).max(), np.abs(o_new - o).max())
        h, o = h_new, o_new
        if moved < 1e-12:
            break
    return float((o.argmax(1) == y).mean())


def main() -> None:
    protocol, scale, (x_te, y_te) = the_split(ROOT / "protocols" / "moons_hopfield_sim.yaml")
    print(f"Bayes classifier: {np.mean(bayes(x_te) == y_te):.3f} on the protocol's {len(y_te)} test points, "
          f"{np.mean(bayes(FRESH[0]) == FRESH[1]):.4f} on {len(FRESH[1]):,} fresh points")
    for arg in sys.argv[1:]:
        run = Path(arg)
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
        print(f"{run.name}: test {summary.get('test_accuracy')} (reproduced {accuracy(run, scale, x_te, y_te):.2f}), "
              f"fresh {accuracy(run, scale, *FRESH):.4f}")


if __name__ == "__main__":
    main()

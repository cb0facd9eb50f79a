"""Write the example CSV data sets of protocols/: two moons and wine (classification), a sine (regression).

    python protocols/data/make_data.py        # writes moons.csv, sine.csv and wine.csv next to this file

moons.csv: scikit-learn's make_moons(n_samples=400, noise=0.2, random_state=0), columns x1, x2, label.
sine.csv: x uniform in [-pi, pi], y = sin x + N(0, 0.05^2), 400 rows, numpy seed 0, columns x, y.
wine.csv: scikit-learn's load_wine() (178 wines, 13 chemical measurements, 3 cultivars), its column
names, then label.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def write(path: Path, header: list[str], rows: np.ndarray, formats: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(header)
        for row in rows:
            out.writerow([f.format(v) for f, v in zip(formats, row)])


def moons(folder: Path = HERE) -> Path:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=400, noise=0.2, random_state=0)
    path = folder / "moons.csv"
    write(path, ["x1", "x2", "label"], np.c_[x, y], ["{:.6f}", "{:.6f}", "{:.0f}"])
    return path


def sine(folder: Path = HERE) -> Path:
    rng = np.random.default_rng(0)
    x = rng.uniform(-np.pi, np.pi, 400)
    y = np.sin(x) + rng.normal(0.0, 0.05, 400)
    path = folder / "sine.csv"
    write(path, ["x", "y"], np.c_[x, y], ["{:.6f}", "{:.6f}"])
    return path


def wine(folder: Path = HERE) -> Path:
    from sklearn.datasets import load_wine

    data = load_wine()
    names = [n.replace("/", "_") for n in data.feature_names]
    path = folder / "wine.csv"
    write(path, [*names, "label"], np.c_[data.data, data.target], ["{:.6g}"] * len(names) + ["{:.0f}"])
    return path


if __name__ == "__main__":
    for made in (moons(), sine(), wine()):
        print(made)

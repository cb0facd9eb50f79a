"""Data files at validate: named columns, numbers by line and column, class count and target width vs outputs."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import PROTOCOLS, aeqlab

from aeqlab.datasets import inspect, load
from aeqlab.datasets.files import DataFileError
from aeqlab.errors import InputError, ProtocolError
from aeqlab.protocol import Dataset, load_protocol

XOR = (PROTOCOLS / "xor_hopfield_sim.yaml").read_text(encoding="utf-8")


def protocol(tmp_path, dataset: str, layers: str = "[2, 8, 2]", outputs: str = "adc/ai0:1") -> str:
    """The XOR protocol with its dataset section replaced (and its network resized when asked)."""
    n_in, n_hidden, n_out = (int(v) for v in layers.strip("[]").split(","))
    n = n_in * n_hidden + n_hidden * n_out + n_hidden + n_out
    text = (
        XOR.replace("dataset:\n  name: xor\n", "dataset:\n" + dataset)
        .replace("layers: [2, 8, 2]", f"layers: {layers}")
        .replace("channels: dac/ao2:43", f"channels: dac/ao{n_in}:{n_in + n - 1}")
        .replace("channels: adc/ai2:43", f"channels: adc/ai{n_out}:{n_out + n - 1}")
        .replace("channels: adc/ai0:1", f"channels: {outputs}")
        .replace("channels: dac/ao0:1", f"channels: dac/ao0:{n_in - 1}" if n_in > 1 else "channels: dac/ao0")
        .replace("channels: smu/ch0:1", f"channels: smu/ch0:{n_out - 1}" if n_out > 1 else "channels: smu/ch0")
    )
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def write_csv(path, header: list[str], rows: np.ndarray) -> None:
    path.write_text(",".join(header) + "\n" + "".join(",".join(f"{v:g}" for v in r) + "\n" for r in rows))


def line_of(path, fragment: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if fragment in text)


@pytest.fixture
def three_classes(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (30, 2))
    write_csv(tmp_path / "d.csv", ["a", "b", "kind"], np.c_[x, np.arange(30) % 3])
    return tmp_path


def test_a_class_count_that_is_not_the_outputs_is_refused_at_the_label_line(three_classes):
    path = protocol(three_classes, "  path: d.csv\n  label: kind\n")
    res = aeqlab("validate", str(path))
    assert res.returncode == 2
    line = line_of(path, "label: kind")
    assert f"p.yaml:{line}:10: dataset.label: data set d.csv has 3 classes (labels 0 to 2 in column 'kind'), but " in (
        res.stderr
    )
    assert "give roles.outputs 3 channels and the twin 3 outputs" in res.stderr and "Traceback" not in res.stderr


def test_the_class_count_of_a_default_label_is_refused_at_the_dataset_line(tmp_path):
    write_csv(tmp_path / "d.csv", ["a", "b", "label"], np.c_[np.eye(3)[:, :2], [0, 1, 2]])
    path = protocol(tmp_path, "  path: d.csv\n  stratify: false\n")
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    assert str(err.value).startswith(f"{path}:{line_of(path, 'dataset:')}:")  # no 'label:' key: the section's line
    assert "3 classes" in str(err.value) and "2 outputs" in str(err.value)


def test_a_missing_class_is_named(tmp_path):
    write_csv(tmp_path / "d.csv", ["a", "b", "label"], np.c_[np.eye(4)[:, :2], [0, 2, 2, 0]])
    with pytest.raises(ProtocolError, match="3 classes .labels 0 to 2 in column 'label'; class 1 has no example."):
        load_protocol(protocol(tmp_path, "  path: d.csv\n"))


def test_a_target_width_that_is_not_the_outputs_is_refused_at_the_targets_line(tmp_path):
    x = np.linspace(-1, 1, 20)
    write_csv(tmp_path / "d.csv", ["x", "y1", "y2", "y3"], np.c_[x, x, -x, x**2])
    path = protocol(tmp_path, "  path: d.csv\n  task: regression\n  targets: [y1, y2, y3]\n", "[1, 4, 2]")
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    msg = str(err.value)
    where = f"p.yaml:{line_of(path, 'targets:')}:3: dataset.targets: "
    assert where + "data set d.csv has 3 target columns (y1, y2, y3)" in msg
    assert "but the network has 2 outputs (one output per target" in msg


def test_a_regression_on_the_label_column_has_one_target(tmp_path):
    x = np.linspace(-1, 1, 20)
    write_csv(tmp_path / "d.csv", ["x", "label"], np.c_[x, x**2])
    with pytest.raises(ProtocolError, match="dataset.label: data set d.csv has 1 target column .label., but the net"):
        load_protocol(protocol(tmp_path, "  path: d.csv\n  task: regression\n", "[1, 4, 2]"))
    p, _ = load_protocol(protocol(tmp_path, "  path: d.csv\n  task: regression\n", "[1, 4, 1]", "adc/ai0"))
    split = load(p.dataset)
    assert split.n_classes == 1 and split.targets(split.y_test).shape == (4, 1)


@pytest.mark.parametrize(
    ("dataset", "key", "fragment"),
    [
        ("  path: d.csv\n  label: kind\n", "dataset.label", "d.csv has no label column 'kind' (its columns: a, b"),
        ("  path: d.csv\n  columns: [a, c]\n", "dataset.columns", "d.csv has no column 'c' (its columns: a, b, label)"),
        ("  path: d.csv\n  task: regression\n  targets: [y]\n", "dataset.targets", "no target column 'y'"),
        ("  path: d.csv\n  columns: [a, label]\n", "dataset.columns", "'label' is both an input and a target"),
        ("  path: d.csv\n  targets: [a]\n", "dataset.targets", "names the target columns of a regression"),
        ("  name: iris\n  task: regression\n", "dataset.task", "the built-in iris is a classification"),
    ],
)
def test_a_missing_or_misplaced_column_is_refused_at_its_key(tmp_path, dataset, key, fragment):
    write_csv(tmp_path / "d.csv", ["a", "b", "label"], np.c_[np.eye(4)[:, :2], [0, 1, 1, 0]])
    path = protocol(tmp_path, dataset)
    res = aeqlab("validate", str(path))
    assert res.returncode == 2 and f": {key}: " in res.stderr and fragment in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_non_numeric_cell_is_reported_by_line_and_column(tmp_path):
    rows = "".join(f"{i / 10},{1 - i / 10},{i % 2}\n" for i in range(10))
    rows = rows.replace("0.3,0.7,1\n", "0.3,n/a,1\n")
    (tmp_path / "d.csv").write_text("a,b,label\n" + rows)
    path = protocol(tmp_path, "  path: d.csv\n")
    res = aeqlab("validate", str(path))
    assert res.returncode == 2
    assert "dataset.path: d.csv line 5, column 'b': 'n/a' is not a number" in res.stderr, res.stderr


def test_a_label_that_is_not_a_class_number_says_what_a_regression_is(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,label\n0,1,0\n1,0,0.5\n")
    res = aeqlab("validate", str(protocol(tmp_path, "  path: d.csv\n")))
    assert "dataset.label: d.csv line 3, column 'label': '0.5' is not a class number" in res.stderr
    assert "for numeric targets set task: regression" in res.stderr


def test_a_row_of_the_wrong_length_is_named(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,label\n0,1,0\n\n\n1,0\n")  # blank lines are skipped, and counted
    with pytest.raises(ProtocolError, match="d.csv line 5 has 2 cells, the header 3"):
        load_protocol(protocol(tmp_path, "  path: d.csv\n"))


def test_validate_reads_at_most_the_scan_cap_and_a_run_still_refuses_the_class_count(tmp_path):
    rng = np.random.default_rng(1)
    rows = np.c_[rng.uniform(-1, 1, (12, 2)), [0, 1] * 5 + [2, 2]]  # the third class only after the first 10 rows
    write_csv(tmp_path / "d.csv", ["a", "b", "label"], rows)
    cfg = Dataset(path=str(tmp_path / "d.csv"), stratify=False, test_size=4)
    assert inspect(cfg, limit=10).outputs is None  # a partial scan claims no class count
    assert inspect(cfg).outputs == 3
    p, _ = load_protocol(protocol(tmp_path, "  name: xor\n"))
    bench_protocol = p.model_copy(update={"dataset": cfg})  # as if validate had read only the first rows
    with pytest.raises(InputError, match="data set d has 3 classes, but the bench has 2 outputs") as err:
        run_inprocess_like(bench_protocol)
    assert err.value.where == "dataset"
    (tmp_path / "d.csv").write_text("a,b,label\n0,1,0\n1,0,1\n0,x,0\n")
    with pytest.raises(DataFileError, match="line 4, column 'b'"):
        inspect(cfg, limit=10)


def run_inprocess_like(protocol):
    """Open the protocol's twin and build the trainer on its data, as a run does."""
    from aeqlab.backends import open_backend
    from aeqlab.engine.trainer import Trainer

    with open_backend(protocol, "sim") as backend:
        Trainer(protocol, backend.bench, load(protocol.dataset))


def test_several_npz_targets_set_the_outputs(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (30, 2))
    np.savez(tmp_path / "d.npz", x=x, y=np.c_[x.sum(axis=1), x[:, 0] * x[:, 1]])
    p, _ = load_protocol(protocol(tmp_path, "  path: d.npz\n  task: regression\n  label: y\n"))
    split = load(p.dataset)
    assert split.n_classes == 2 and split.targets(split.y_train).shape == (24, 2)
    with pytest.raises(ProtocolError, match="dataset.label: data set d.npz has 2 targets per example .array 'y'."):
        load_protocol(protocol(tmp_path, "  path: d.npz\n  task: regression\n  label: y\n", "[2, 4, 3]", "adc/ai0:2"))
    with pytest.raises(ProtocolError, match="dataset.targets: 'targets' names CSV columns"):
        load_protocol(protocol(tmp_path, "  path: d.npz\n  task: regression\n  targets: [y]\n"))


def test_the_docs_document_every_dataset_field_and_the_examples_validate(tmp_path):
    from helpers import ROOT

    doc = (ROOT / "docs" / "protocols.md").read_text(encoding="utf-8")
    section = doc[doc.index("### Data sets: `dataset`") :]
    section = section[: section.index("\n### ", 1)]
    for field in Dataset.model_fields:
        assert f"| `{field}` |" in section, f"docs/protocols.md: no row for dataset.{field}"
    for example in ("moons_hopfield_sim.yaml", "sine_hopfield_sim.yaml"):
        p, _ = load_protocol(PROTOCOLS / example)
        assert p.dataset.path.endswith(".csv") and f"protocols/{example}" in section

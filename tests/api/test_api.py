"""The Python API in-process: the documented snippet, run objects, stopping, process-wide state, old folders."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import aeqlab
from aeqlab.protocol.text import canonical_text

ROOT = Path(__file__).resolve().parents[2]
OLD_RUN = ROOT / "tests" / "fixtures" / "run-before-run-engine"


@pytest.fixture
def xor():
    return aeqlab.load_protocol(ROOT / "protocols" / "xor_hopfield_sim.yaml")


def test_the_documented_snippet_runs_and_the_run_speaks_pandas_and_xarray(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    protocol = aeqlab.load_protocol(ROOT / "protocols" / "iris_hopfield_sim.yaml")
    assert aeqlab.example("iris_hopfield_sim") == protocol
    events = []
    with aeqlab.open_bench(protocol, backend="sim") as bench:
        run = aeqlab.train(protocol, bench, epochs=2, seed=0, out="runs", callbacks=[events.append])
    assert run.summary["status"] == "completed" and run.summary["samples"] == 240
    kinds = [e.kind for e in events]
    assert kinds[0] == "open" and kinds[1] == "evaluation" and kinds[-1] == "close"
    assert kinds.count("sample") == 240 and kinds.count("epoch") == 2
    samples, epochs = run.samples(), run.epochs()
    assert len(samples) == 240 and list(epochs.index) == [0, 1, 2]
    np.testing.assert_allclose(samples.loss.to_numpy(), [e.loss for e in events if e.kind == "sample"])
    assert epochs.test_accuracy.iloc[-1] == run.summary["test_accuracy"]
    ds = run.to_xarray()
    assert ds.loss.dims == ("sample",) and ds.tracked.dims == ("sample", "param")
    np.testing.assert_allclose(ds.loss.values, samples.loss.to_numpy())
    last_tracked = [e for e in events if e.kind == "sample"][-1].sample.checkpoint.state.targets[ds.param.values]
    np.testing.assert_allclose(ds.tracked.values[-1], last_tracked)
    assert ds.sample_s.attrs["units"] == "s"
    again = aeqlab.open_run(run.path)
    assert again.summary == run.summary and np.array_equal(again.params, run.params)


def test_export_netcdf_opens_with_xarray(tmp_path, xor):
    from aeqlab.cli import main

    with aeqlab.open_bench(xor) as bench:
        run = aeqlab.train(xor, bench, epochs=2, out=tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["export", str(run.path), "--format", "netcdf", "-o", str(tmp_path / "x")])
    assert done.value.code in (0, None)
    ds = xr.open_dataset(tmp_path / "x" / "run.nc")
    np.testing.assert_allclose(ds.loss.values, run.samples().loss.to_numpy())
    assert ds.attrs["protocol"] == xor.name


def test_a_callback_stops_the_run_and_the_sigint_handler_is_what_it_was(tmp_path, xor):
    def mine(signum, frame):  # a handler of the caller's own
        pass

    previous = signal.signal(signal.SIGINT, mine)
    try:
        with aeqlab.open_bench(xor) as bench:

            def stop_at_6(ev):
                if ev.kind == "sample" and ev.samples_done == 6:
                    ev.request_stop("enough for now")

            run = aeqlab.train(xor, bench, epochs=5, out=tmp_path, callbacks=[stop_at_6])
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, previous)
    s = run.summary
    assert s["status"] == "interrupted" and s["samples"] == 6 and s["error"].startswith("enough for now")
    assert s["safe_state"] == "safe"
    done = aeqlab.resume(run.path)
    assert done.summary["status"] == "completed" and done.summary["samples"] == 20


def test_a_stop_event_from_another_thread_stops_a_run_in_a_thread(tmp_path, xor):
    stop = threading.Event()
    result = {}

    def train():
        with aeqlab.open_bench(xor) as bench:
            result["run"] = aeqlab.train(
                xor,
                bench,
                epochs=500,
                out=tmp_path,
                stop=stop,
                callbacks=[lambda ev: ev.kind == "sample" and stop.set()],
            )

    worker = threading.Thread(target=train)
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    s = result["run"].summary
    assert s["status"] == "interrupted" and s["samples"] == 1 and "stop event" in s["error"]


def test_resumed_through_the_api_is_bit_for_bit_the_uninterrupted_run(tmp_path, xor):
    with aeqlab.open_bench(xor) as bench:
        straight = aeqlab.train(xor, bench, epochs=4, out=tmp_path / "a")
    with aeqlab.open_bench(xor) as bench:
        cut = aeqlab.train(
            xor,
            bench,
            epochs=4,
            out=tmp_path / "b",
            callbacks=[lambda ev: ev.kind == "sample" and ev.samples_done == 7 and ev.request_stop()],
        )
    assert cut.summary["samples"] == 7
    resumed = aeqlab.resume(cut.path)
    assert resumed.summary["params_sha256"] == straight.summary["params_sha256"]


def test_a_protocol_from_a_dict_gets_a_canonical_text_and_its_hash(tmp_path, xor):
    data = xor.model_dump(mode="json")
    built = aeqlab.protocol_from_dict(data, base_dir=tmp_path)
    assert built == xor
    with aeqlab.open_bench(built) as bench:
        run = aeqlab.train(built, bench, epochs=1, out=tmp_path)
    text = (run.path / "protocol.yaml").read_text()
    assert text == canonical_text(built)
    assert aeqlab.open_run(run.path).protocol() == built
    import hashlib

    assert run.header.protocol_sha256 == hashlib.sha256(text.encode()).hexdigest()
    # a loaded protocol keeps its own file's text, until it is changed
    with aeqlab.open_bench(xor) as bench:
        as_written = aeqlab.train(xor, bench, epochs=1, out=tmp_path / "w")
    assert (as_written.path / "protocol.yaml").read_text() == (ROOT / "protocols" / "xor_hopfield_sim.yaml").read_text()
    changed = xor.model_copy(update={"seed": 3})
    with aeqlab.open_bench(changed) as bench:
        run3 = aeqlab.train(changed, bench, epochs=1, out=tmp_path / "c")
    assert "seed: 3" in (run3.path / "protocol.yaml").read_text()


def test_a_bad_dict_is_one_line_per_problem():
    with pytest.raises(aeqlab.ProtocolError) as err:
        aeqlab.protocol_from_dict({"name": "x"})
    assert all(line.startswith("<dict>: ") for line in str(err.value.message).splitlines())


def test_preview_and_gradcheck_from_python(xor):
    pv = aeqlab.preview(xor, samples=1)
    assert pv.error is None and pv.actions and pv.samples[0]["sample"] == 1
    checks = aeqlab.gradcheck(aeqlab.example("iris_hopfield_sim"), beta=1e-3, samples=1)
    assert checks[0].relative_error < 1e-5


def test_a_run_folder_written_before_the_run_engine_opens_exports_and_resumes(tmp_path):
    folder = tmp_path / OLD_RUN.name
    shutil.copytree(OLD_RUN, folder)
    run = aeqlab.open_run(folder)
    assert run.summary["status"] == "interrupted" and len(run.samples()) == run.summary["samples"]
    assert run.to_xarray().sizes["sample"] == run.summary["samples"]
    con = sqlite3.connect(folder / "journal.sqlite")
    assert "knobs" not in {r[1] for r in con.execute("PRAGMA table_info(snapshots)")}  # the old schema
    con.close()
    done = aeqlab.resume(folder)
    assert done.summary["status"] == "completed" and done.summary["samples"] == 12
    assert done.sessions().exit_status.tolist() == ["interrupted", "completed"]


def test_the_example_in_docs_api_runs_as_written(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "api.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "protocols").symlink_to(ROOT / "protocols")
    monkeypatch.chdir(tmp_path)
    import matplotlib

    matplotlib.use("Agg")  # the test's own choice: the snippet plots, aeqlab never sets a backend
    scope: dict = {}
    exec(compile(code, "docs/api.md", "exec"), scope)  # noqa: S102 - the documented example itself
    run = scope["run"]
    assert run.summary["status"] == "completed" and len(scope["losses"]) == run.summary["samples"] == 240
    assert scope["ds"].sizes["sample"] == 240

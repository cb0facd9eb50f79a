"""The run checks the memory it will need before allocating the twin, the bench or the data."""

from __future__ import annotations

import builtins
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from clirunner import run_cli

from aeqlab.backends import memory, open_backend
from aeqlab.datasets import load
from aeqlab.engine.records import EpochTotals
from aeqlab.engine.trainer import Trainer
from aeqlab.errors import InputError
from aeqlab.protocol import load_protocol, parse_protocol
from aeqlab.runs.journaling import pack_checkpoint

ROOT = Path(__file__).resolve().parents[1]
XOR = ROOT / "protocols" / "xor_hopfield_sim.yaml"
DIGITS = ROOT / "protocols" / "digits_hopfield_sim.yaml"


def digits_with_hidden(h: int):
    """The digits protocol with a hidden layer of ``h`` units (roles widened to match)."""
    p = 64 * h + h * 10 + h + 10
    text = DIGITS.read_text(encoding="utf-8").replace("layers: [64, 128, 10]", f"layers: [64, {h}, 10]")
    text = text.replace("dac/ao64:9673", f"dac/ao64:{64 + p - 1}").replace("adc/ai10:9619", f"adc/ai10:{10 + p - 1}")
    return parse_protocol(text, str(DIGITS))


def test_a_run_that_does_not_fit_is_refused_in_one_line_before_anything_is_built(tmp_path, monkeypatch):
    import aeqlab.backends.sim as sim

    def never(*args, **kwargs):
        raise AssertionError("the twin was built although the memory check refused the run")

    monkeypatch.setattr(sim, "open_sim", never)
    monkeypatch.setattr(memory, "available_bytes", lambda: 10_000)  # 10 kB
    result = run_cli("run", str(XOR), "--sim", "--out", str(tmp_path / "runs"))
    assert result.returncode == 2, result.stderr
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    need = sum(n.bytes for n in memory.needs(load_protocol(XOR)[0], "sim"))
    assert lines[0].startswith("error: simulation.layers: the run needs about ")
    assert f"about {need / 2**30:.2f} GiB of memory" in lines[0] and "0.00 GiB is available" in lines[0]
    assert "reduce simulation.layers (the largest is layers[1] = 8)" in lines[0]
    assert not (tmp_path / "runs").exists()  # no run folder either


def test_the_largest_part_is_named_a_wide_layer_by_its_stability_matrices():
    text = XOR.read_text(encoding="utf-8").replace("layers: [2, 8, 2]", "layers: [2, 4096, 2]")
    p = 2 * 4096 + 4096 * 2 + 4096 + 2
    text = text.replace("dac/ao2:43", f"dac/ao2:{2 + p - 1}").replace("adc/ai2:43", f"adc/ai2:{2 + p - 1}")
    protocol = parse_protocol(text, str(XOR))
    parts = {n.what: n.bytes for n in memory.needs(protocol, "sim")}
    assert parts["the twin's stability check (states × states matrices)"] == 4 * 4098**2 * 8  # 0.5 GiB
    with pytest.raises(InputError) as info:
        memory.check_memory(protocol, "sim", available=256 * 2**20)
    line = info.value.one_line()
    assert line.startswith("simulation.layers: the run needs about 0.5")
    assert "(the twin's stability check (states × states matrices): 0.50 GiB), and 0.25 GiB is available" in line
    assert "reduce simulation.layers (the largest is layers[1] = 4096)" in line
    memory.check_memory(protocol, "sim", available=2**30)  # it fits in 1 GiB
    # on a bench there is no twin: only the channels count
    assert "the twin's stability check (states × states matrices)" not in {
        n.what for n in memory.needs(protocol, "bench")
    }


def test_an_npz_file_is_sized_by_its_array_headers_not_its_compressed_bytes(tmp_path):
    data = tmp_path / "big.npz"
    np.savez_compressed(data, x=np.zeros((4000, 64)), label=np.arange(4000) % 10)
    assert data.stat().st_size < 50_000  # zeros compress to almost nothing
    text = DIGITS.read_text(encoding="utf-8").replace("  name: digits\n", f"  path: {data}\n")
    protocol = parse_protocol(text, str(DIGITS))
    parts = {n.what: n for n in memory.needs(protocol, "sim")}
    assert parts["the data set"].bytes == 4 * 8 * (4000 * 64 + 4000) and parts["the data set"].field == "dataset.path"


def test_the_estimate_covers_what_a_run_allocates():
    """tracemalloc over opening the twin, loading the data, the stability check, a sample and a checkpoint."""
    protocol = digits_with_hidden(256)

    def run_once() -> None:
        backend = open_backend(protocol, "sim")
        try:
            data = load(protocol.dataset)
            backend.stability(data.x_train)
            trainer = Trainer(protocol, backend.bench, data, oracle=backend.oracle)
            trainer.start()
            trainer.train_one(1, 0, 0, 0.5)
            pack_checkpoint(trainer.checkpoint(1, 1, 0.5, {}, EpochTotals()))
            backend.snapshot()
        finally:
            backend.close()

    run_once()  # the imports and compiled kernels it needs are not the run's
    tracemalloc.start()
    try:
        run_once()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    estimate = sum(n.bytes for n in memory.needs(protocol, "sim"))
    assert peak <= estimate <= 5 * peak, (peak, estimate)


def test_available_memory_falls_back_to_sysconf(monkeypatch):
    first = memory.available_bytes()
    assert first is not None and first > 0
    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path) == "/proc/meminfo":
            raise OSError("no /proc here")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    fallback = memory.available_bytes()
    assert fallback is not None and fallback > 0

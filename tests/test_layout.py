"""The layout shows the design: import contracts that fail on each known leak, no cycles, small modules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aeqlab", "drivers", "sim_backends")
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def tree(tmp_path):
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold_on_the_tree_as_it_is(tree):
    proc = lint(tree)
    assert proc.returncode == 0, proc.stdout[-3000:]


LEAKS = {
    # a composition root of real instruments that reaches into the physics
    "bench root imports sim_backends": ("aeqlab/backends/bench.py", "import sim_backends.twin", "agnostic"),
    # a tool that builds its own twin instead of asking the sim backend
    "a tool imports sim_backends": ("aeqlab/tools/gradcheck.py", "import sim_backends.hopfield", "agnostic"),
    "drivers import aeqlab": ("drivers/base.py", "import aeqlab.errors", "Root packages"),
    "sim_backends import aeqlab": ("sim_backends/twin.py", "import aeqlab.errors", "Root packages"),
    "the journal imports engine internals": ("aeqlab/journal/database.py", "import aeqlab.engine.state", "layers"),
    "an engine module imports the run level (a cycle)": (
        "aeqlab/engine/trainer.py",
        "import aeqlab.runs.engine",
        "layers",
    ),
    "the run level opens backends itself": ("aeqlab/runs/training.py", "import aeqlab.backends.sim", "layers"),
    "the engine imports a driver class": ("aeqlab/engine/bench.py", "import drivers.keithley2450", "driver classes"),
}


@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_each_known_leak_breaks_a_contract(tree, leak):
    path, line, contract = LEAKS[leak]
    f = tree / path
    f.write_text(f.read_text() + f"\n{line}  # noqa\n")
    proc = lint(tree)
    assert proc.returncode != 0, f"{leak}: lint-imports kept every contract"
    broken = [ln for ln in proc.stdout.splitlines() if "BROKEN" in ln or contract in ln]
    assert any(contract in ln for ln in broken), proc.stdout[-3000:]


def test_a_new_subpackage_must_be_given_its_layer(tree):
    (tree / "aeqlab" / "newthing").mkdir()
    (tree / "aeqlab" / "newthing" / "__init__.py").write_text('"""Somewhere to be placed."""\n')
    proc = lint(tree)
    assert proc.returncode != 0 and "newthing" in proc.stdout


def _cycles(graph: grimp.ImportGraph, prefix: str) -> list[list[str]]:
    """Strongly connected components (with more than one module) of the import graph among ``prefix``'s modules."""
    mods = sorted(m for m in graph.modules if m == prefix or m.startswith(prefix + "."))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan, iterative enough for this graph's depth
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if not (w == prefix or w.startswith(prefix + ".")):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in mods:
        if m not in index:
            visit(m)
    return out


def test_no_import_cycles():
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    for pkg in PACKAGES:
        assert _cycles(graph, pkg) == [], pkg


def test_every_package_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    for pkg in PACKAGES:
        for init in (ROOT / pkg).rglob("__init__.py"):
            name = ".".join(init.parent.relative_to(ROOT).parts)
            assert name in listed, f"{name} is missing from [tool.setuptools] packages"
    assert config["package-dir"]["aeqlab.example_protocols"] == "protocols"


def test_modules_stay_small_or_say_why():
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            text = f.read_text(encoding="utf-8")
            lines = text.count("\n")
            if lines > 420:
                head = text.split('"""')[1] if text.startswith('"""') else ""
                assert "lines:" in head, f"{f.relative_to(ROOT)} has {lines} lines and no reason in its docstring"

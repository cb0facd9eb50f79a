"""Shared fixtures. Real-hardware tests are opt-in: ``pytest --bench`` (marker ``bench``)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

# Bytecode caches on, for this process, the xdist workers and every subprocess a test starts:
# under PYTHONDONTWRITEBYTECODE each of them would compile aeqlab's modules from source again
# (about a second per process; the suite starts dozens of processes).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# Ctrl-C tests send SIGINT to the processes they start. A shell that runs the suite in the
# background starts it with SIGINT ignored, and every child would inherit that (Python keeps an
# inherited ignore): a Python handler here makes the children start with the default instead.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# the twin's linear algebra is small: BLAS threads only contend with each other
threadpool_limits(limits=1, user_api="blas")

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = ROOT / "protocols"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench", action="store_true", help="run tests that drive real instruments")


def pytest_configure(config: pytest.Config) -> None:
    # Compile the twin's relaxation kernel (or load it from numba's cache) once, here in the
    # controller, before pytest-xdist starts its workers: on a fresh checkout every worker and
    # every test subprocess would otherwise compile it again (about 20 s of CPU each) until one
    # of them had written the cache.
    if not hasattr(config, "workerinput"):
        from sim_backends.kernels import relax_kernel

        relax_kernel()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--bench"):
        return
    skip = pytest.mark.skip(reason="drives real instruments: opt in with --bench")
    for item in items:
        if "bench" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def protocols_dir() -> Path:
    return PROTOCOLS

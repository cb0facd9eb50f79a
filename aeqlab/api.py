"""The Python API: what the command line does, for scripts and notebooks.

>>> import aeqlab
>>> protocol = aeqlab.example("iris_hopfield_sim")
>>> with aeqlab.open_bench(protocol, backend="sim") as bench:
...     run = aeqlab.train(protocol, bench, epochs=2, seed=0, out="runs")
>>> run.summary["test_accuracy"]                                  # doctest: +SKIP
>>> run.samples().loss.rolling(50).mean().plot()                  # doctest: +SKIP

Importing and using aeqlab changes no process-wide state: signal handlers are put
back after a run, matplotlib's backend is never set, nothing is printed unless
``progress=True`` (or a callback prints).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from aeqlab.backends import open_backend
from aeqlab.engine.backend import Backend
from aeqlab.errors import InputError
from aeqlab.protocol import Protocol
from aeqlab.protocol.text import attach_source, source_of
from aeqlab.runs import training
from aeqlab.runs.events import RunEvent
from aeqlab.runs.run import Run

Callback = Callable[[RunEvent], Any]


def load_protocol(path: str | Path) -> Protocol:
    """A protocol file, validated (every problem at once, as ``file:line:col``); it keeps its text."""
    from aeqlab.protocol import load_protocol as _load

    protocol, text = _load(path)
    return attach_source(protocol, text, str(Path(path).resolve()))


def protocol_from_dict(data: dict[str, Any], base_dir: str | Path | None = None) -> Protocol:
    """A protocol from a dict (as YAML would give); relative data paths resolve from ``base_dir``."""
    from pydantic import ValidationError

    from aeqlab.errors import ProtocolError

    context = {"base_dir": str(base_dir)} if base_dir is not None else None
    try:
        return Protocol.model_validate(data, context=context)
    except ValidationError as exc:
        lines = [f"<dict>: {'.'.join(str(k) for k in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise ProtocolError("\n".join(lines)) from None


def _examples_dir():
    """The example protocols: package data of an installed aeqlab, or a checkout's ``protocols/``."""
    try:
        return resources.files("aeqlab.example_protocols")
    except ModuleNotFoundError:  # a source checkout (editable install, PYTHONPATH): the repository's folder
        return Path(__file__).resolve().parents[1] / "protocols"


def examples() -> list[str]:
    """The names of the example protocols shipped with aeqlab."""
    return sorted(p.name[:-5] for p in _examples_dir().iterdir() if p.name.endswith(".yaml"))


def example(name: str) -> Protocol:
    """An example protocol shipped with aeqlab, by name (``"iris_hopfield_sim"``; see :func:`examples`)."""
    names = examples()
    if name not in names:
        raise InputError(f"no example protocol {name!r}", where="aeqlab.example", hint=f"one of {', '.join(names)}")
    with resources.as_file(_examples_dir() / f"{name}.yaml") as path:
        return load_protocol(path)


def open_bench(protocol: Protocol, backend: str = "sim", **options: Any) -> Backend:
    """Open what ``protocol`` runs on: ``"sim"`` (its twin), ``"emulate"`` (real drivers, emulated
    instruments on loopback) or ``"bench"`` (the real instruments). Use it as a context manager:
    on the way out every source goes to its safe state and everything is closed.
    """
    return open_backend(protocol, backend, **options)


def _session(
    callbacks: Iterable[Callback], stop: threading.Event | None, progress: bool, handle_signals: bool | None
) -> tuple[training.Session, Any]:
    subscribers = list(callbacks)
    console = None
    notify = None
    if progress:
        from rich.console import Console

        from aeqlab.runs.progress import LiveView

        console = Console(stderr=True, highlight=False, soft_wrap=True)
        subscribers.insert(0, LiveView(console))
        notify = lambda msg: console.print(msg, markup=False)  # noqa: E731
    on_main = threading.current_thread() is threading.main_thread()
    return training.Session(subscribers, stop, on_main if handle_signals is None else handle_signals, notify), console


def train(
    protocol: Protocol,
    bench: Backend,
    *,
    epochs: int | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    callbacks: Iterable[Callback] = (),
    stop: threading.Event | None = None,
    progress: bool = False,
    snapshot_every: int | None = None,
    handle_signals: bool | None = None,
) -> Run:
    """Train ``protocol`` on an open bench; every sample is journaled in a new run folder.

    Parameters
    ----------
    protocol
        From :func:`load_protocol`, :func:`example` or :func:`protocol_from_dict`.
    bench
        From :func:`open_bench`.
    epochs, seed, out
        Override ``schedule.epochs``, the protocol's ``seed`` and ``output.dir``.
    callbacks
        Called with every :mod:`run event <aeqlab.runs.events>` (``event.kind``: open,
        evaluation, sample, epoch, params, rehome, close); ``event.request_stop()`` ends
        the run after the sample in flight.
    stop
        Set this event (from any thread) to stop the run after the sample in flight.
    progress
        Show the live view on stderr.
    snapshot_every
        A full parameter snapshot every N samples (default: 4 per epoch).
    handle_signals
        Defer Ctrl-C while the run goes (default: in the main thread only); the previous
        handlers are always put back.

    Returns
    -------
    Run
        The run; ``run.summary["status"]`` is completed, interrupted or failed.
    """
    text, path = source_of(protocol)
    session, _ = _session(callbacks, stop, progress, handle_signals)
    summary = training.start(
        protocol,
        text,
        path or "<python>",
        bench,
        epochs=epochs,
        seed=seed,
        out=out,
        snapshot_every=snapshot_every,
        session=session,
    )
    return Run(summary["run_dir"])


def resume(
    run_dir: str | Path,
    *,
    force: bool = False,
    from_best: bool = False,
    epochs: int | None = None,
    out: str | Path | None = None,
    callbacks: Iterable[Callback] = (),
    stop: threading.Event | None = None,
    progress: bool = False,
    handle_signals: bool | None = None,
) -> Run:
    """Continue an interrupted, killed or faulted run from its last committed sample, on its backend kind.

    With ``from_best``, train on instead from the run's best parameters by its validation
    split (``best.npz``) in a new *child* run folder (in ``out``, default beside the run),
    up to epoch ``epochs`` (default: the run's planned epochs); the run's own folder is
    only read. The child's ``summary["parent"]`` names the run and the best sample.
    """
    session, _ = _session(callbacks, stop, progress, handle_signals)
    if from_best:
        from aeqlab.runs.frombest import from_best as _from_best

        if force:
            raise InputError(
                "force applies to a resume of the run itself", where="aeqlab.resume", hint="leave out force"
            )
        summary = _from_best(run_dir, open_backend, epochs=epochs, out=out, session=session)
        return Run(summary["run_dir"])
    if epochs is not None or out is not None:
        raise InputError(
            "epochs and out apply to a resume from the best parameters only",
            where="aeqlab.resume",
            hint="add from_best=True, or leave them out",
        )
    summary = training.resume(run_dir, open_backend, force=force, session=session)
    return Run(summary["run_dir"])


def open_run(path: str | Path) -> Run:
    """A run folder as a :class:`~aeqlab.runs.run.Run` (read-only)."""
    return Run(path)


def preview(protocol: Protocol, samples: int = 1):
    """The instrument actions of the start and the first ``samples`` samples, on the twin, each value checked."""
    from aeqlab.tools.planview import preview as _preview

    return _preview(protocol, None, samples)


def gradcheck(
    protocol: Protocol | str | Path,
    *,
    beta: float = 1e-3,
    variant: str | None = None,
    nudging: str | None = None,
    samples: int = 3,
    at: int | None = None,
    epoch: int | None = None,
):
    """Real Aeqprop steps through the twin's instruments against implicit differentiation (a list per step).

    ``protocol`` is a protocol (the check starts at θ₀) or a run folder: then it starts at a
    parameter snapshot of the run's journal, at sample ``at`` (the last one at or before it),
    at the end of ``epoch`` (0: before training), or the last one.
    """
    from aeqlab.tools.gradcheck import gradcheck as _gradcheck

    start = None
    if not isinstance(protocol, Protocol):
        from aeqlab.report.data import open_run as _open
        from aeqlab.tools.fidelity import pick, run_protocol

        _, journal = _open(Path(protocol))
        try:
            snap, header = pick(journal, at=at, epoch=epoch), journal.header()
        finally:
            journal.close()
        protocol, start = run_protocol(Path(protocol), header.protocol_path, header.n_params), snap.start()
    elif at is not None or epoch is not None:
        raise InputError("at and epoch need a run folder, not a protocol", where="aeqlab.gradcheck")
    return _gradcheck(protocol, beta=beta, variant=variant, nudging=nudging, samples=samples, start=start)


def sweep(sweep_file: str | Path, **options: Any):
    """Run a sweep file on Dask (``docs/sweeps.md``); see :func:`aeqlab.sweeps.sweep` for the options.

    Returns a :class:`aeqlab.sweeps.SweepResult`: ``status``, ``dataset`` (xarray), ``points``, ``path``.
    """
    from aeqlab.sweeps import sweep as _sweep

    return _sweep(sweep_file, **options)

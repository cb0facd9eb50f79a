"""The command line run in this process: what a user sees (exit code, stdout, stderr) without a new interpreter.

A fresh ``python -m aeqlab.cli`` imports numpy, scipy, pydantic, rich and the drivers again, which is
most of what a short command costs. Tests that need a real process (signal delivery, SIGKILL, the
``AEQLAB_TEST_HOOK`` kill, the installed console script) keep using ``subprocess``.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Result:
    """What a process running the command would have left: its exit code and both streams.

    ``leaked_signals`` names the signal handlers the command left changed; the runner has put
    them back already, so one command cannot change how the next test sees Ctrl-C.
    """

    returncode: int
    stdout: str
    stderr: str
    leaked_signals: tuple[str, ...] = field(default=())


@contextlib.contextmanager
def _environment(env: Mapping[str, str | None] | None) -> Iterator[None]:
    """Set (or, for ``None``, remove) environment variables for the block, then put them back."""
    saved = {key: os.environ.get(key) for key in env or {}}
    try:
        for key, value in (env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _directory(cwd: str | os.PathLike[str] | None) -> Iterator[None]:
    before = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(before)


def run_cli(
    *args: str | os.PathLike[str],
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str | None] | None = None,
) -> Result:
    """Run ``aeqlab ARGS`` in this process and return its exit code and output.

    Parameters
    ----------
    *args
        The command line after ``aeqlab`` (paths are turned into strings).
    cwd
        The working directory for the command; the previous one is restored afterwards.
    env
        Environment variables to set for the command (``None`` removes one); restored afterwards.

    Returns
    -------
    Result
        ``returncode`` as ``sys.exit`` gave it, ``stdout`` and ``stderr`` as text.
    """
    from aeqlab.cli import main
    from aeqlab.cli.app import err

    # the module-level stderr console must follow sys.stderr (rich reads it at each print when no
    # file was given), else the redirect below would miss every error line
    assert err._file is None, "aeqlab.cli.app.err was bound to a fixed file: the runner cannot capture it"
    out, errs = io.StringIO(), io.StringIO()
    handlers = {sig: signal.getsignal(sig) for sig in SIGNALS}
    code: int | str | None = 0
    with _environment(env), _directory(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(errs):
        try:
            main([os.fspath(a) for a in args])
        except SystemExit as exc:
            code = exc.code
        finally:
            leaked = tuple(sig.name for sig, h in handlers.items() if signal.getsignal(sig) is not h)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    if isinstance(code, str):  # what the interpreter does with sys.exit("message")
        errs.write(code + "\n")
        code = 1
    return Result(0 if code is None else int(code), out.getvalue(), errs.getvalue(), leaked)


def capsys_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``aeqlab ARGS`` through the typer app in this process, output taken from pytest's ``capsys``:
    (exit code, stdout, stderr)."""
    from aeqlab.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err

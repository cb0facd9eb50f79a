"""Error types of drivers and simulated instruments; each carries *where* and *how to fix*.

They stand alone (drivers import nothing from ``aeqlab``); :mod:`aeqlab.errors` builds
its hierarchy on :class:`ReportedError`, so ``except AeqlabError`` catches a driver's
:class:`InstrumentError` and the CLI maps ``exit_code`` (2 bad input, 1 runtime failure).
"""

from __future__ import annotations


class ReportedError(Exception):
    """Base of every error reported to a user in one line.

    Parameters
    ----------
    message
        What went wrong, in one sentence.
    where
        The place: a file and line, a CLI option, an instrument channel.
    hint
        How to fix it.
    """

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def one_line(self) -> str:
        """``where: message (hint)`` on one line, whitespace collapsed."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.one_line()


class InputError(ReportedError):
    """Bad input from the user: a protocol, a CLI option, a data file."""

    exit_code = 2


class LimitError(ReportedError):
    """A value beyond a channel's configured limits or slew; raised before anything is sent."""

    exit_code = 1


class InstrumentError(ReportedError):
    """An instrument did not answer, answered nonsense, or reported a fault."""

    exit_code = 1


class StabilityError(ReportedError):
    """The joint equilibrium of states and floating parameters is not a minimum."""

    exit_code = 1

"""Error types. Each carries *where* the problem is and *how* to fix it.

The CLI turns them into one line and an exit code: 2 for bad input, 1 for a
runtime failure, 130 when interrupted.
"""

from __future__ import annotations


class AeqlabError(Exception):
    """Base of every error aeqlab reports to a user.

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
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.one_line()


class InputError(AeqlabError):
    """Bad input from the user: a protocol, a CLI option, a data file."""

    exit_code = 2


class ProtocolError(InputError):
    """A protocol file that cannot be loaded or is not valid."""


class LimitError(AeqlabError):
    """A value beyond a channel's configured limits; raised before anything is sent."""

    exit_code = 1


class InstrumentError(AeqlabError):
    """An instrument did not answer, answered nonsense, or reported a fault."""

    exit_code = 1


class StabilityError(AeqlabError):
    """The joint equilibrium of states and floating parameters is not a minimum."""

    exit_code = 1


class Interrupted(AeqlabError):
    """The user asked the run to stop (Ctrl-C)."""

    exit_code = 130


class StorageError(AeqlabError):
    """The run folder or its journal cannot be written (a full disk, a read-only folder)."""

    exit_code = 1

"""Error types. Each carries *where* the problem is and *how* to fix it.

The CLI turns them into one line and an exit code: 2 for bad input, 1 for a
runtime failure, 130 when interrupted, 3 when the stability monitor stopped a run.
The base and the errors drivers raise live in :mod:`drivers.errors` (drivers stand
alone); they are the same classes here, so ``except AeqlabError`` catches a driver's :class:`InstrumentError`.
"""

from __future__ import annotations

from drivers.errors import InputError, InstrumentError, LimitError, ReportedError, StabilityError

AeqlabError = ReportedError  # the base of every error aeqlab reports to a user


class ProtocolError(InputError):
    """A protocol file that cannot be loaded or is not valid."""


class Interrupted(AeqlabError):
    """The user asked the run to stop (Ctrl-C)."""

    exit_code = 130


class StabilityStop(Interrupted):
    """The stability monitor stopped the run (``stability.action: stop``); it can be resumed."""

    exit_code = 3


class ComplianceTripped(InstrumentError):
    """A nudge source reported its compliance tripped under ``safety.on_compliance: fault``.

    ``what`` names the source; ``during`` (added by the run engine) the step it cut.
    """

    exit_code = 1

    def __init__(self, what: str, *, during: str | None = None, where: str | None = None, hint: str | None = None):
        super().__init__(f"{what} during {during}" if during else what, where=where, hint=hint)
        self.what = what
        self.during = during


class StorageError(AeqlabError):
    """The run folder or its journal cannot be written (a full disk, a read-only folder)."""

    exit_code = 1


__all__ = [
    "AeqlabError",
    "ComplianceTripped",
    "InputError",
    "InstrumentError",
    "Interrupted",
    "LimitError",
    "ProtocolError",
    "StabilityError",
    "StabilityStop",
    "StorageError",
]

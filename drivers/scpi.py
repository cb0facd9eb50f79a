"""SCPI over VISA: one link per instrument, with identity checks and timeout recovery.

Every exchange goes through :class:`ScpiLink`. After a VISA timeout the link clears
the session (which drains a late reply), re-identifies the instrument and retries the
operation (``retries`` times, once by default); a second timeout in a row is a fault
(:class:`~drivers.errors.InstrumentError`). A garbled reply (not the ``1`` of ``*OPC?``,
not numbers, the wrong count, not text) is retried the same way, once, before it is a
fault. Non-finite or overload readings are errors naming the instrument and the
command. :meth:`ScpiLink.reconnect` reopens a dropped link (the safe state uses it once).
"""

from __future__ import annotations

import math
import re
import select
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from pyvisa import constants
from pyvisa.errors import VisaIOError

from drivers.errors import InputError, InstrumentError

T = TypeVar("T")

OVERLOAD = 9.9e37  # what Keysight and Keithley instruments return for an overload


class ScpiLink:
    """A SCPI session over a pyvisa resource (or anything with write/query/read/clear/close).

    Parameters
    ----------
    name
        The instrument's name in the protocol (for messages).
    resource
        An open pyvisa resource, or a test double with the same methods.
    expect
        Substrings of which one must appear in the ``*IDN?`` reply (the model), e.g. ``("2450",)``.
    address
        The resource string, for messages.
    retries
        Retries of an operation after a timeout (clear + re-identify first).
    """

    def __init__(
        self, name: str, resource: Any, *, expect: tuple[str, ...], address: str = "", retries: int = 1
    ) -> None:
        self.name = name
        self.resource = resource
        self.expect = expect
        self.address = address or getattr(resource, "resource_name", "")
        self.retries = retries
        self.identity = ""
        self.round_trips = 0
        # False while an exchange is cut short (Ctrl-C mid-query, a timeout, a reply given up on): a reply may
        # still be on its way, so the next clear waits for the line to go quiet
        self.settled = True
        self.reopen: Callable[[], Any] | None = None  # opens the resource again (set by open)

    # -------------------------------------------------------------- opening
    @classmethod
    def open(
        cls,
        name: str,
        address: str | None,
        *,
        expect: tuple[str, ...],
        timeout: float = 2.0,
        read_termination: str = "\n",
        write_termination: str = "\n",
        retries: int = 1,
    ) -> ScpiLink:
        """Open a VISA resource with pyvisa-py and check its identity. Changes no output."""
        import pyvisa

        if not address:
            raise InputError(
                "no VISA resource given",
                where=f"instruments.{name}.resource",
                hint="e.g. TCPIP::192.168.1.20::5025::SOCKET or GPIB0::24::INSTR",
            )
        try:
            rm = pyvisa.ResourceManager("@py")
            res = rm.open_resource(address)
        except (ValueError, pyvisa.errors.VisaIOError, OSError) as exc:
            raise InstrumentError(
                f"cannot open {address}: {exc}".splitlines()[0],
                where=f"instruments.{name}.resource",
                hint="check the resource string and that the instrument is connected",
            ) from None
        res.timeout = timeout * 1000.0
        res.read_termination = read_termination
        res.write_termination = write_termination
        link = cls(name, res, expect=expect, address=address, retries=retries)

        def reopen() -> Any:
            fresh = rm.open_resource(address)
            fresh.timeout = timeout * 1000.0
            fresh.read_termination = read_termination
            fresh.write_termination = write_termination
            return fresh

        link.reopen = reopen
        try:
            link.identify()
        except BaseException:
            link.close()
            raise
        return link

    def identify(self) -> str:
        """Query ``*IDN?`` and check the model; remembers the identity."""
        idn = self._guard(lambda: self.resource.query("*IDN?"), "*IDN?", recover=False).strip()
        self._check_identity(idn)
        self.identity = idn
        return idn

    def _check_identity(self, idn: str) -> None:
        fields = idn.split(",")
        if len(fields) < 2 or not any(e.upper() in fields[1].upper() for e in self.expect):
            raise InstrumentError(
                f"{self.name}: {self.address} answered *IDN? with {idn[:60]!r}, not a {' or '.join(self.expect)}",
                where=f"instruments.{self.name}",
                hint="check the driver and the resource string",
            )

    # ----------------------------------------------------------- exchanges
    def write(self, command: str) -> None:
        """Send a command and wait for it to complete (``*OPC?`` answered ``1``); a garbled answer is retried once."""

        def confirmed(reply: str) -> None:
            if reply.strip().split(";")[-1] != "1":
                raise _Garbled(f"{command!r} was not confirmed (reply {reply[:40]!r})")

        self._checked(f"{command};*OPC?", confirmed, hint="check the instrument's error queue with SYST:ERR?")

    def query(self, command: str) -> str:
        """Send a query and return the reply (stripped)."""
        return self._guard(lambda: self.resource.query(command), command).strip()

    def _checked(self, command: str, parse: Callable[[str], T], hint: str | None = None) -> T:
        """``parse(query(command))``; a reply ``parse`` finds garbled is retried after recovery, then a fault."""
        attempts = 0
        while True:
            try:
                return parse(self.query(command))
            except _Garbled as exc:
                attempts += 1
                if attempts > self.retries:
                    self.settled = False  # given up on: what else it sends must not be taken for the next reply
                    raise InstrumentError(
                        f"{self.name}: {exc}" + (" (twice in a row)" if attempts > 1 else ""),
                        hint=hint or "check the instrument's mode and the read termination",
                    ) from None
                self._recover(command)

    def query_floats(self, command: str, n: int | None = None, limits: tuple[float, float] | None = None) -> np.ndarray:
        """A query whose reply is comma-separated numbers; checks count, finiteness and limits."""

        def numbers(reply: str) -> np.ndarray:
            try:
                values = np.array([float(p) for p in re.split(r"[;,]", reply)], dtype=float)
            except ValueError:
                raise _Garbled(f"reply to {command!r} is not numbers: {reply[:60]!r}") from None
            if n is not None and values.size != n:
                raise _Garbled(f"reply to {command!r} has {values.size} values, expected {n}")
            return values

        values = self._checked(command, numbers)
        if not np.all(np.isfinite(values)) or np.any(np.abs(values) >= OVERLOAD):
            detail = self._first_error()
            if detail:
                raise InstrumentError(
                    f"{self.name}: {command!r} gave no valid reading; the instrument reports {detail}"
                )
            raise InstrumentError(
                f"{self.name}: {command!r} gave an overload or non-finite reading ({values[:4]})",
                hint="widen the measurement range",
            )
        if limits is not None and np.any((values < limits[0]) | (values > limits[1])):
            raise InstrumentError(
                f"{self.name}: {command!r} gave {float_list(values[:4])}, outside the range "
                f"[{limits[0]:g}, {limits[1]:g}]",
                hint="check the wiring and the measurement range",
            )
        return values

    def _first_error(self) -> str | None:
        """The first entry of the error queue, or None when it is empty."""
        reply = self.query("SYST:ERR?")
        code = reply.split(",", 1)[0].strip()
        return None if code in ("0", "+0", "-0") else reply

    def check_errors(self, context: str) -> None:
        """Read the error queue; raise on the first error."""
        for _ in range(20):
            reply = self.query("SYST:ERR?")
            code = reply.split(",", 1)[0].strip()
            try:
                if int(code) == 0:
                    return
            except ValueError:
                raise InstrumentError(f"{self.name}: SYST:ERR? answered {reply[:60]!r}") from None
            raise InstrumentError(f"{self.name}: instrument error after {context}: {reply}")

    def clear(self, quick: bool = False) -> None:
        """Drop whatever the session has buffered (a late reply, an interrupted exchange).

        A raw socket is drained here first: on a connection the instrument has closed,
        PyVISA-py's own clear would loop forever. ``quick``: when every exchange so far
        completed (:attr:`settled`), nothing can be on its way and the session's own clear
        (a device clear; on a socket, 0.1 s of waiting for the line to go quiet) is skipped.
        """
        sock = _socket_of(self.resource)
        if sock is not None:
            try:
                while select.select([sock], [], [], 0)[0]:
                    if not sock.recv(65536):
                        raise InstrumentError(
                            f"{self.name}: {self.address} closed the connection",
                            hint="check the instrument and the network; its source state is unknown",
                        )
            except OSError as exc:
                raise InstrumentError(f"{self.name}: connection to {self.address} failed: {exc}") from None
        if quick and self.settled:
            return
        try:
            self.resource.clear()
        except (VisaIOError, OSError):
            pass
        self.settled = True

    def reconnect(self) -> bool:
        """Close and reopen the link and check the identity; False when that is impossible or fails."""
        if self.reopen is None:
            return False
        self.close()
        try:
            self.resource = self.reopen()
            self._check_identity(self._guard(lambda: self.resource.query("*IDN?"), "*IDN?", recover=False).strip())
            return True
        except Exception:  # noqa: BLE001 - the caller reports the channels it cannot confirm
            return False

    def clear_or_reconnect(self) -> bool:
        """Drop what the session holds; reopen once if the link has dropped. False if it stays down.

        Before a safe state: the device clear runs only when an exchange was cut short.
        """
        try:
            self.clear(quick=True)
            return True
        except InstrumentError:
            return self.reconnect()

    def close(self) -> None:
        try:
            self.resource.close()
        except Exception:  # noqa: BLE001 - closing must not fail a shutdown
            pass

    # ------------------------------------------------------------ recovery
    def _guard(self, op: Callable[[], T], what: str, recover: bool = True, completes: bool = True) -> T:
        """``op()`` with timeouts recovered; ``completes=False`` for a write whose reply the next read takes."""
        attempts = 0
        self.settled = False
        while True:
            try:
                self.round_trips += 1
                result = op()
                self.settled = completes
                return result
            except VisaIOError as exc:
                if exc.error_code != constants.StatusCode.error_timeout:
                    raise InstrumentError(f"{self.name}: VISA error on {what!r}: {exc.abbreviation}") from None
                attempts += 1
                if not recover or attempts > self.retries:
                    raise InstrumentError(
                        f"{self.name}: no reply to {what!r} from {self.address}"
                        + (" (twice in a row)" if attempts > 1 else ""),
                        hint="check that the instrument is on and connected; its source state is unknown",
                    ) from None
                self._recover(what)
            except OSError as exc:
                reason = exc.strerror or exc.__class__.__name__
                raise InstrumentError(
                    f"{self.name}: cannot talk to {self.address}: {reason}",
                    hint="check that the instrument is on, reachable, and the address is right",
                ) from None
            except UnicodeDecodeError:
                attempts += 1
                if not recover or attempts > self.retries:
                    raise InstrumentError(f"{self.name}: reply to {what!r} is not text") from None
                self._recover(what)

    def _recover(self, what: str) -> None:
        """After a timeout or a garbled reply: clear the session, re-identify, skipping a late reply."""
        self.clear()
        self._guard(lambda: self.resource.write("*IDN?"), "*IDN?", recover=False, completes=False)
        for _ in range(3):
            idn = self._guard(lambda: self.resource.read(), "*IDN?", recover=False).strip()
            if idn == self.identity or not self.identity:
                return
        raise InstrumentError(
            f"{self.name}: after a failed exchange on {what!r} the instrument answers {idn[:60]!r}, "
            f"not its identity {self.identity[:60]!r}",
            hint="the link is out of step; check the connection",
        )


class _Garbled(Exception):
    """A reply that arrived but makes no sense (retried like a timeout)."""


def _socket_of(resource: Any) -> socket.socket | None:
    """The socket under a PyVISA-py TCPIP SOCKET session, if that is what ``resource`` is."""
    try:
        session = resource.visalib.sessions[resource.session]
    except (AttributeError, KeyError, TypeError, VisaIOError):
        return None
    sock = getattr(session, "interface", None)
    return sock if isinstance(sock, socket.socket) else None


def float_list(values: np.ndarray) -> str:
    """Numbers joined by commas, 12 significant digits (for messages; values sent go through the guard)."""
    return ",".join(f"{float(v):.12g}" for v in values)


def isclose(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)


def open_scpi(name: str, settings: Any, expect: tuple[str, ...], build: Callable[[ScpiLink], T]) -> T:
    """Open the link a driver's settings describe and build the driver on it; close the link if that fails."""
    link = ScpiLink.open(
        name,
        settings.resource,
        expect=expect,
        timeout=settings.timeout,
        read_termination=settings.read_termination,
        write_termination=settings.write_termination,
        retries=settings.retries,
    )
    try:
        return build(link)
    except BaseException:
        link.close()
        raise

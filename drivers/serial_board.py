"""A multi-channel DAC/ADC board on a serial line (our firmware contract, docs/serial_board.md).

The board's DACs and ADCs are numbered separately on the wire (``DAC 0..``,
``ADC 0..``). In aeqlab one instrument has one channel space, so channels
``0 .. n_dac-1`` are the DACs and ``n_dac .. n_dac+n_adc-1`` the ADCs: with 160 of
each, ``board/ao4`` is DAC 4 and ``board/ai164`` is ADC 4.

Every DAC value goes through the board's :class:`~drivers.guard.SourceGuard`; a set is
confirmed by its ``OK n`` reply (the firmware applies a line before it answers), the
safe state by reading every DAC back (``GETM_DAC``). The board's span comes from
``RANGE?`` at connect: a ``voltage_range`` beyond it is refused there.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from pydantic import Field

from drivers.base import DriverOptions, DriverSettings, Ramp, parse_options
from drivers.errors import InputError, InstrumentError
from drivers.guard import SourceGuard
from drivers.hardware import HardwareRange
from drivers.limits import LimitTable
from drivers.safe import levels_to_safe


class BoardOptions(DriverOptions):
    """``instruments.<name>.options`` of the serial board."""

    exclusive: bool = Field(True, description="refuse to share the serial port with another process")
    dac_channels: int | None = Field(None, gt=0, description="DAC count the board must report (NCH?)")
    adc_channels: int | None = Field(None, gt=0, description="ADC count the board must report (NCH?)")


def channel_list(channels: np.ndarray) -> str:
    """Channels as the firmware takes them: ``a:b`` for runs, joined by commas (``0:3,7``)."""
    parts: list[str] = []
    ch = [int(c) for c in channels]
    i = 0
    while i < len(ch):
        j = i
        while j + 1 < len(ch) and ch[j + 1] == ch[j] + 1:
            j += 1
        parts.append(f"{ch[i]}:{ch[j]}" if j > i else str(ch[i]))
        i = j + 1
    return ",".join(parts)


class LineLink:
    """One ASCII command, one reply line; timeout recovery like :class:`drivers.scpi.ScpiLink`.

    Parameters
    ----------
    name
        The instrument's name (for messages).
    port
        An open ``serial.Serial`` (or anything with write/readline/reset_input_buffer/close).
    address
        The port name, for messages.
    retries
        Retries after a timeout (after draining and re-identifying).
    """

    def __init__(self, name: str, port: Any, *, address: str = "", retries: int = 1) -> None:
        self.name = name
        self.port = port
        self.address = address
        self.retries = retries
        self.identity = ""
        self.round_trips = 0
        self._buffer = b""
        self.reopen: Any = None  # opens the port again (set by SerialBoard.open)

    def _exchange(self, command: str) -> str:
        self.round_trips += 1
        self.port.write(command.encode("ascii") + b"\n")
        raw = self._readline()
        try:
            return raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise InstrumentError(f"{self.name}: reply to {command[:40]!r} is not ASCII text") from None

    def _readline(self) -> bytes:
        """One reply line, read in chunks (pyserial's readline reads byte by byte)."""
        while b"\n" not in self._buffer:
            chunk = self.port.read(max(1, getattr(self.port, "in_waiting", 0)))
            if not chunk:
                raise TimeoutError("no reply")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    def query(self, command: str, recover: bool = True) -> str:
        """Send one line and return the reply; ``ERR`` replies raise :class:`InstrumentError`."""
        import serial

        attempts = 0
        while True:
            try:
                reply = self._exchange(command)
                break
            except TimeoutError:
                attempts += 1
                if not recover or attempts > self.retries:
                    raise InstrumentError(
                        f"{self.name}: no reply to {command[:40]!r} from {self.address}"
                        + (" (twice in a row)" if attempts > 1 else ""),
                        hint="check the cable and that the board is powered; its outputs are unknown",
                    ) from None
                self._resync(command)
            except (serial.SerialException, OSError) as exc:
                raise InstrumentError(
                    f"{self.name}: serial port {self.address} failed: {exc}".splitlines()[0],
                    hint="check the cable and that no other program holds the port",
                ) from None
        if reply.startswith("ERR"):
            raise InstrumentError(f"{self.name}: the board refused {command[:40]!r}: {reply[:80]}")
        return reply

    def checked(self, command: str, parse: Any) -> Any:
        """``parse(query(command))``; a reply ``parse`` refuses (ValueError) is retried once after a resync."""
        attempts = 0
        while True:
            reply = self.query(command)
            try:
                return parse(reply)
            except ValueError as exc:
                attempts += 1
                if attempts > self.retries:
                    raise InstrumentError(
                        f"{self.name}: {exc}" + (" (twice in a row)" if attempts > 1 else "")
                    ) from None
                self._resync(command)

    def reconnect(self) -> bool:
        """Reopen the port and check the identity; False when impossible or when it fails."""
        if self.reopen is None:
            return False
        self.close()
        try:
            self.port = self.reopen()
            self._buffer = b""
            idn = self.query("*IDN?", recover=False)
            return not self.identity or idn == self.identity
        except Exception:  # noqa: BLE001 - the caller reports what it cannot confirm
            return False

    def clear_or_reconnect(self) -> bool:
        """Drain the port; reopen it once when it failed. False when it stays down."""
        try:
            self.port.reset_input_buffer()
            self._buffer = b""
            return True
        except Exception:  # noqa: BLE001
            return self.reconnect()

    def _resync(self, command: str) -> None:
        """After a timeout: drain, re-identify, skipping a late reply still on its way."""
        self.clear()
        idn = self.query("*IDN?", recover=False)
        for _ in range(3):
            if idn == self.identity or not self.identity:
                return
            try:
                idn = self._readline().decode("ascii", "replace").strip()
            except TimeoutError:
                break
        raise InstrumentError(
            f"{self.name}: after a timeout on {command[:40]!r} the board answers {idn[:60]!r}, not its identity",
            hint="the link is out of step; check the connection",
        )

    def clear(self) -> None:
        try:
            time.sleep(0.01)
            self.port.reset_input_buffer()
            self._buffer = b""
        except Exception:  # noqa: BLE001 - best effort before a safe state
            pass

    def close(self) -> None:
        try:
            self.port.close()
        except Exception:  # noqa: BLE001
            pass


def _numbers(name: str, command: str, reply: str, n: int) -> np.ndarray:
    """Numbers of a reply; ValueError (retried as garbled) when they are not n finite numbers."""
    try:
        values = np.array([float(p) for p in reply.split(",")], dtype=float)
    except ValueError:
        raise ValueError(f"reply to {command[:40]!r} is not numbers: {reply[:60]!r}") from None
    if values.size != n or not np.all(np.isfinite(values)):
        raise ValueError(f"reply to {command[:40]!r} is not {n} finite numbers: {reply[:60]!r}")
    return values


def parse_floats(name: str, command: str, reply: str, n: int, limits: tuple[float, float] | None = None) -> np.ndarray:
    """Comma-separated numbers, checked for count, finiteness and range."""
    try:
        values = np.array([float(p) for p in reply.split(",")], dtype=float)
    except ValueError:
        raise InstrumentError(f"{name}: reply to {command[:40]!r} is not numbers: {reply[:60]!r}") from None
    if values.size != n:
        raise InstrumentError(f"{name}: reply to {command[:40]!r} has {values.size} values, expected {n}")
    if not np.all(np.isfinite(values)):
        raise InstrumentError(f"{name}: reply to {command[:40]!r} has non-finite values")
    if limits is not None and np.any((values < limits[0]) | (values > limits[1])):
        raise InstrumentError(
            f"{name}: reply to {command[:40]!r} is outside [{limits[0]:g}, {limits[1]:g}]: {reply[:60]}",
            hint="check the wiring and the board's range",
        )
    return values


class SerialBoard:
    """The serial DAC/ADC board: an :class:`AnalogOutput` and :class:`AnalogInput` in one.

    Parameters
    ----------
    name
        The instrument's name in the protocol.
    link
        An identified :class:`LineLink`.
    settings
        Ranges, ramp and options.
    """

    expect = "DACADC"
    Options = BoardOptions
    hardware = HardwareRange(
        voltage=(-10.0, 10.0),
        source="docs/serial_board.md: DAC and ADC span as RANGE? reports it (±10 V on the reference build)",
    )

    def __init__(self, name: str, link: LineLink, settings: DriverSettings) -> None:
        self.name = name
        self.link = link
        self.ramp: Ramp = settings.ramp
        counts = parse_floats(name, "NCH?", link.query("NCH?"), 2)
        self.n_dac, self.n_adc = int(counts[0]), int(counts[1])
        self.n_channels = self.n_dac + self.n_adc
        opts = parse_options(BoardOptions, settings.options, f"instruments.{name}")
        for what, want, have in (("DAC", opts.dac_channels, self.n_dac), ("ADC", opts.adc_channels, self.n_adc)):
            if want is not None and want != have:
                raise InstrumentError(
                    f"{name}: the board reports {have} {what} channels, the protocol expects {want}",
                    where=f"instruments.{name}.options",
                    hint="check the board's firmware build or the options",
                )
        if settings.channels is not None and settings.channels > self.n_channels:
            raise InstrumentError(
                f"{name}: the board has {self.n_dac} DAC + {self.n_adc} ADC channels, not {settings.channels}",
                where=f"instruments.{name}.channels",
            )
        span = parse_floats(name, "RANGE?", link.query("RANGE?"), 2)
        lo, hi = settings.voltage_range
        if lo < span[0] or hi > span[1]:
            raise InstrumentError(
                f"{name}: voltage_range [{lo:g}, {hi:g}] V exceeds the board's span [{span[0]:g}, {span[1]:g}] V",
                where=f"instruments.{name}.voltage_range",
                hint="narrow voltage_range to what RANGE? reports",
            )
        self.output_limits = LimitTable(name, "voltage", "V", self.n_channels, *settings.voltage_range, prefix="ao")
        self.input_limits = LimitTable(name, "voltage", "V", self.n_channels, *settings.voltage_range, prefix="ai")
        if self.n_adc:  # no channel of the ADC side may be driven
            adc = np.arange(self.n_dac, self.n_channels)
            self.output_limits.low[adc] = 0.0
            self.output_limits.high[adc] = 0.0
        self.output_guard = SourceGuard(self.output_limits, self.ramp.step, self.ramp.rate)
        self.output_guard.know(np.arange(self.n_dac, self.n_channels), 0.0)  # ADC side: never driven
        self.output_guard.know(np.arange(self.n_dac), self._read_levels(np.arange(self.n_dac)))

    @classmethod
    def open(cls, name: str, settings: DriverSettings) -> SerialBoard:
        """Open the port, check ``*IDN?`` and read every DAC setpoint (changes nothing)."""
        import serial

        if not settings.resource:
            raise InputError("no serial port given", where=f"instruments.{name}.resource", hint="e.g. /dev/ttyACM0")
        opts = parse_options(BoardOptions, settings.options, f"instruments.{name}")
        try:
            port = serial.serial_for_url(
                settings.resource,
                baudrate=settings.baud,
                timeout=settings.timeout,
                write_timeout=settings.timeout,
                exclusive=opts.exclusive,
            )
        except (serial.SerialException, ValueError, OSError) as exc:
            raise InstrumentError(
                f"cannot open serial port {settings.resource}: {exc}".splitlines()[0],
                where=f"instruments.{name}.resource",
                hint="check the port name and that no other program holds it",
            ) from None
        link = LineLink(name, port, address=settings.resource, retries=settings.retries)
        link.reopen = lambda: serial.serial_for_url(
            settings.resource,
            baudrate=settings.baud,
            timeout=settings.timeout,
            write_timeout=settings.timeout,
            exclusive=opts.exclusive,
        )
        try:
            link.clear()
            idn = link.query("*IDN?", recover=False)
            fields = idn.split(",")
            if len(fields) < 2 or cls.expect not in fields[1].upper():
                raise InstrumentError(
                    f"{name}: {settings.resource} answered *IDN? with {idn[:60]!r}, not a DAC/ADC board",
                    where=f"instruments.{name}",
                )
            link.identity = idn
            return cls(name, link, settings)
        except BaseException:
            link.close()
            raise

    def identify(self) -> str:
        idn = self.link.query("*IDN?")
        self.link.identity = self.link.identity or idn
        return idn

    # ------------------------------------------------------------- outputs
    def _dac(self, channels: ArrayLike) -> np.ndarray:
        ch = self.output_limits.indices(channels)
        if ch.size and ch.max() >= self.n_dac:
            raise InstrumentError(f"{self.name}: channel {int(ch.max())} is an ADC input, not a DAC output")
        return ch

    @property
    def _setpoint(self) -> np.ndarray:
        return self.output_guard.present

    def _read_levels(self, ch: np.ndarray) -> np.ndarray:
        cmd = f"GETM_DAC {channel_list(ch)}"
        return self.link.checked(cmd, lambda reply: _numbers(self.name, cmd, reply, ch.size))

    def _send(self, ch: np.ndarray, volts: np.ndarray, texts: list[str] | None) -> None:
        command = f"SETM {channel_list(ch)} {','.join(texts or [])}"

        def confirmed(reply: str) -> None:
            if reply != f"OK {ch.size}":
                raise ValueError(f"SETM of {ch.size} channels answered {reply[:40]!r}")

        self.link.checked(command, confirmed)

    def _learn(self, ch: np.ndarray) -> None:
        lost = self.output_guard.unknown(ch)
        if lost.size:
            self.output_guard.know(lost, self._read_levels(lost))

    def write(self, channels: ArrayLike, volts: ArrayLike) -> None:
        """Set many DACs in one line (V) through the guard (limits, rounding, slew)."""
        ch, _, _ = self.output_guard.admit(channels, volts)
        self._dac(ch)
        self._learn(ch)
        self.output_guard.move(ch, volts, self._send)

    def setpoints(self, channels: ArrayLike) -> np.ndarray:
        ch = self._dac(channels)
        self._learn(ch)
        return self._setpoint[ch].copy()

    # -------------------------------------------------------------- inputs
    def read(self, channels: ArrayLike) -> np.ndarray:
        """Read many ADCs in one line (V)."""
        ch = self.input_limits.indices(channels)
        if ch.size and ch.min() < self.n_dac:
            raise InstrumentError(
                f"{self.name}: channel {int(ch.min())} is a DAC output; ADC inputs start at {self.n_dac}"
            )
        command = f"GETM_ADC {channel_list(ch - self.n_dac)}"
        lim = (float(self.input_limits.low[ch].min()), float(self.input_limits.high[ch].max()))
        values = self.link.checked(command, lambda reply: _numbers(self.name, command, reply, ch.size))
        if np.any((values < lim[0]) | (values > lim[1])):
            raise InstrumentError(
                f"{self.name}: reply to {command[:40]!r} is outside [{lim[0]:g}, {lim[1]:g}]",
                hint="check the wiring and the board's range",
            )
        return values

    def safe_state(self, mode: str = "zero") -> list[str]:
        """Every DAC to its safe value, confirmed by reading back (the board has no output relays).

        ``hold`` leaves the levels. Returns one failure per DAC not confirmed safe.
        """
        if not self.link.clear_or_reconnect():
            return [f"{self.name}: port lost and not re-opened; every DAC level is unknown"]
        if mode == "hold":
            return []
        return levels_to_safe(
            self.output_guard, np.arange(self.n_dac), self._send, self._read_levels, lambda c: f"{self.name}/ao{c}"
        )

    def state(self) -> dict[str, Any]:
        return {"dac": self.n_dac, "adc": self.n_adc, "setpoint_V": self._setpoint[: self.n_dac].tolist()}

    def close(self) -> None:
        self.link.close()

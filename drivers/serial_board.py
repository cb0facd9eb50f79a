"""A multi-channel DAC/ADC board on a serial line (our firmware contract, docs/serial_board.md).

The board's DACs and ADCs are numbered separately on the wire (``DAC 0..``,
``ADC 0..``). In aeqlab one instrument has one channel space, so channels
``0 .. n_dac-1`` are the DACs and ``n_dac .. n_dac+n_adc-1`` the ADCs: with 160 of
each, ``board/ao4`` is DAC 4 and ``board/ai164`` is ADC 4.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from pydantic import Field

from aeqlab.errors import InputError, InstrumentError
from drivers.base import DriverOptions, DriverSettings, Ramp, fmt, parse_options, ramped
from drivers.limits import LimitTable


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
        self.output_limits = LimitTable(name, "voltage", "V", self.n_channels, *settings.voltage_range, prefix="ao")
        self.input_limits = LimitTable(name, "voltage", "V", self.n_channels, *settings.voltage_range, prefix="ai")
        if self.n_adc:  # no channel of the ADC side may be driven
            adc = np.arange(self.n_dac, self.n_channels)
            self.output_limits.low[adc] = 0.0
            self.output_limits.high[adc] = 0.0
        cmd = f"GETM_DAC 0:{self.n_dac - 1}"
        self._setpoint = np.zeros(self.n_channels)
        self._setpoint[: self.n_dac] = parse_floats(name, cmd, link.query(cmd), self.n_dac)

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

    def _send(self, ch: np.ndarray, volts: np.ndarray) -> None:
        command = f"SETM {channel_list(ch)} {','.join(fmt(v) for v in volts)}"
        reply = self.link.query(command)
        if reply != f"OK {ch.size}":
            raise InstrumentError(f"{self.name}: SETM of {ch.size} channels answered {reply[:40]!r}")
        self._setpoint[ch] = volts

    def write(self, channels: ArrayLike, volts: ArrayLike) -> None:
        """Set many DACs in one line (V), ramping; limits are checked before anything is sent."""
        ch, v = self.output_limits.check(channels, volts)
        self._dac(ch)
        ramped(self._setpoint[ch], v, self.ramp, lambda step: self._send(ch, step))

    def setpoints(self, channels: ArrayLike) -> np.ndarray:
        return self._setpoint[self._dac(channels)].copy()

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
        return parse_floats(self.name, command, self.link.query(command), ch.size, lim)

    def safe_state(self) -> None:
        """Ramp every DAC to 0 V (the board has no output relays)."""
        self.link.clear()
        ch = np.flatnonzero(self._setpoint[: self.n_dac] != 0)
        if ch.size:
            ramped(self._setpoint[ch], np.zeros(ch.size), self.ramp, lambda step: self._send(ch, step))

    def state(self) -> dict[str, Any]:
        return {"dac": self.n_dac, "adc": self.n_adc, "setpoint_V": self._setpoint[: self.n_dac].tolist()}

    def close(self) -> None:
        self.link.close()

"""Emulated serial DAC/ADC board on a pseudo-terminal (firmware contract: docs/serial_board.md).

The emulator keeps the slave side of the pty open itself, so reading the master never
fails with EIO while no client holds the port. Its channels use the driver's single
channel space: DAC k is channel k, ADC k is channel ``n_dac + k``.
"""

from __future__ import annotations

import os
import pty
import select
import threading
import time
import tty
from collections import deque

import numpy as np

from sim_backends.emulators.faults import ReplyFaults
from sim_backends.emulators.scpi_server import CommandRecord
from sim_backends.emulators.wiring import TwinChannels

MAX_LINE = 65536


class BoardError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"ERR {code} {text}")


def parse_channels(text: str, n: int) -> np.ndarray:
    """``0:3,7`` → [0, 1, 2, 3, 7]; every channel must be below n."""
    out: list[int] = []
    try:
        for part in text.split(","):
            a, _, b = part.partition(":")
            lo, hi = int(a), int(b) if b else int(a)
            if hi < lo:
                raise BoardError(2, "bad argument")
            out.extend(range(lo, hi + 1))
    except ValueError:
        raise BoardError(2, "bad argument") from None
    ch = np.array(out, np.intp)
    if ch.size == 0 or ch.min() < 0 or ch.max() >= n:
        raise BoardError(3, "channel out of range")
    return ch


def parse_values(text: str) -> np.ndarray:
    try:
        v = np.array([float(x) for x in text.split(",")])
    except ValueError:
        raise BoardError(2, "bad argument") from None
    if not np.all(np.isfinite(v)):
        raise BoardError(2, "bad argument")
    return v


class SerialBoardEmulator(ReplyFaults):
    """The DAC/ADC board of docs/serial_board.md, over a pty.

    Parameters
    ----------
    name
        The instrument's name (in logs).
    channels
        Twin wiring of ``n_dac + n_adc`` channels (DACs first).
    n_dac, n_adc
        Channel counts.
    span
        DAC and ADC range ±span volts.
    """

    def __init__(self, name: str, channels: TwinChannels, n_dac: int, n_adc: int, *, span: float = 10.0) -> None:
        if channels.n != n_dac + n_adc:
            raise ValueError("the wiring must have n_dac + n_adc channels")
        self.name = name
        self.channels = channels
        self.n_dac = n_dac
        self.n_adc = n_adc
        self.span = span
        self.idn = f"aeqlab,DACADC-{n_dac}x{n_adc},0001,1.0"
        self.dac = channels.present(np.arange(n_dac))
        self.log: deque[CommandRecord] = deque(maxlen=200_000)
        self._init_faults()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fds: tuple[int, int] | None = None
        self._wake: tuple[int, int] | None = None
        self.port_name = ""

    # ------------------------------------------------------------ commands
    def handle_line(self, line: str) -> str:
        """Execute one command line; return the reply (always one line)."""
        self.log.append(CommandRecord(time.time(), self.name, line))
        try:
            return self._execute(line)
        except BoardError as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - the twin refused (e.g. unstable)
            return f"ERR 6 hardware fault: {' '.join(str(exc).split())[:80]}"

    def _execute(self, line: str) -> str:
        parts = line.split()
        if not parts:
            raise BoardError(1, "unknown command")
        cmd, args = parts[0].upper(), parts[1:]
        if cmd == "*IDN?" and not args:
            return self.idn
        if cmd == "*RST" and not args:
            self._set(np.arange(self.n_dac), np.zeros(self.n_dac))
            return "OK"
        if cmd == "NCH?" and not args:
            return f"{self.n_dac},{self.n_adc}"
        if cmd == "RANGE?" and not args:
            return f"{-self.span:g},{self.span:g}"
        if cmd in ("SET", "SETM") and len(args) == 2:
            ch = parse_channels(args[0], self.n_dac)
            v = parse_values(args[1])
            if v.size != ch.size or (cmd == "SET" and ch.size != 1):
                raise BoardError(2, "bad argument")
            self._set(ch, v)
            return f"OK {v[0]:.12g}" if cmd == "SET" else f"OK {ch.size}"
        if cmd in ("GET_DAC", "GETM_DAC") and len(args) == 1:
            ch = parse_channels(args[0], self.n_dac)
            return ",".join(f"{v:.12g}" for v in self.dac[ch])
        if cmd in ("GET_ADC", "GETM_ADC") and len(args) == 1:
            ch = parse_channels(args[0], self.n_adc)
            values = np.clip(self.channels.measure(ch + self.n_dac), -self.span, self.span)
            return ",".join(f"{v:.12g}" for v in values)
        raise BoardError(1, "unknown command")

    def _set(self, ch: np.ndarray, v: np.ndarray) -> None:
        if np.any(np.abs(v) > self.span):
            raise BoardError(4, "value out of range")
        self.dac[ch] = v
        self.channels.drive(ch, v)

    def output_state(self) -> dict[str, np.ndarray]:
        return {"level": self.dac.copy(), "on": np.ones(self.n_dac, bool)}

    # ------------------------------------------------------------- serving
    @property
    def resource(self) -> str:
        return self.port_name

    def start(self) -> SerialBoardEmulator:
        """Open a pty and serve its master on a daemon thread; clients open :attr:`port_name`."""
        master, slave = pty.openpty()
        tty.setraw(slave)
        self._fds = (master, slave)
        self._wake = os.pipe()
        self.port_name = os.ttyname(slave)
        self._thread = threading.Thread(target=self._serve, name=f"emulator-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self._fds is not None and self._wake is not None
        master = self._fds[0]
        buf = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([master, self._wake[0]], [], [], 1.0)
            if self._wake[0] in ready or not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO while no client holds the slave: wait and retry
                time.sleep(0.01)
                continue
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode("ascii", "replace").strip()
                reply = self.handle_line(line) if len(raw) <= MAX_LINE else "ERR 5 line too long"
                self._reply(master, reply)
            if len(buf) > MAX_LINE:
                buf = b""
                self._reply(master, "ERR 5 line too long")

    def _reply(self, master: int, reply: str) -> None:
        if self.latency:
            time.sleep(self.latency)
        fault = self._next_fault()
        if fault is not None and fault[0] in ("drop", "hangup"):  # a pty cannot hang up: the reply is lost
            return
        if fault is not None and fault[0] == "delay":
            time.sleep(float(fault[1]))
        if fault is not None and fault[0] == "garbage":
            reply = str(fault[1])
        data = reply.encode("ascii", "replace") + b"\n"
        while data and not self._stop.is_set():
            try:
                n = os.write(master, data)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            except OSError:
                return
            data = data[n:]

    def stop(self) -> None:
        """Stop serving and close the pty."""
        if self._thread is None:
            return
        self._stop.set()
        assert self._wake is not None and self._fds is not None
        os.write(self._wake[1], b"x")
        self._thread.join(timeout=2)
        for fd in (*self._fds, *self._wake):
            try:
                os.close(fd)
            except OSError:
                pass
        self._thread = None

    def __enter__(self) -> SerialBoardEmulator:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

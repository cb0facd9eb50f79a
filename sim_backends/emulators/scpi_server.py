"""A SCPI instrument emulator served on loopback TCP (raw socket, ``\\n`` terminated).

Subclasses register command handlers (regular expressions on the command with the
leading ``:`` removed, case-insensitive). A line may chain commands with ``;``;
replies of one line are joined with ``;``. Unknown headers and bad values go to the
error queue (``SYST:ERR?``) as on a real instrument. Every command is logged.

Faults for transport tests: :meth:`ScpiEmulator.delay_next` (a late reply),
:meth:`drop_next` (no reply), :meth:`garbage_next` (a nonsense reply),
:meth:`hang_up` (close every connection).
"""

from __future__ import annotations

import re
import socket
import socketserver
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim_backends.emulators.faults import ReplyFaults
from sim_backends.emulators.wiring import TwinChannels


@dataclass(frozen=True)
class CommandRecord:
    """One command as the emulator received it."""

    time: float
    instrument: str
    command: str


class ScpiError(Exception):
    """A command the emulated instrument refuses: (code, text) goes to its error queue."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f'{code},"{text}"')
        self.code = code


Handler = Callable[[re.Match], str | None]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class ScpiEmulator(ReplyFaults):
    """Base of SCPI emulators: server, dispatch, error queue, command log, faults.

    Parameters
    ----------
    name
        The instrument's name (in logs).
    channels
        Its wiring to the twin.
    idn
        The ``*IDN?`` reply.
    log_size
        How many commands the log keeps.
    """

    def __init__(self, name: str, channels: TwinChannels, idn: str, *, log_size: int = 200_000) -> None:
        self.name = name
        self.channels = channels
        self.idn = idn
        self.log: deque[CommandRecord] = deque(maxlen=log_size)
        self.errors: deque[str] = deque(maxlen=50)
        self._handlers: list[tuple[re.Pattern, Handler]] = []
        self._init_faults()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.on("\\*IDN\\?", lambda m: self.idn)
        self.on("\\*OPC\\?", lambda m: "1")
        self.on("\\*CLS", lambda m: self.errors.clear())
        self.on("\\*RST", lambda m: self.reset())
        self.on(
            "SYST(?:EM)?:ERR(?:OR)?(?::NEXT)?\\?", lambda m: self.errors.popleft() if self.errors else '0,"No error"'
        )

    # ------------------------------------------------------------ commands
    def on(self, pattern: str, handler: Handler) -> None:
        """Register a handler for commands matching ``pattern`` (full match, case-insensitive)."""
        self._handlers.append((re.compile(pattern, re.IGNORECASE), handler))

    def reset(self) -> None:
        """``*RST``: subclasses put their outputs off and levels to zero."""

    def output_state(self) -> dict[str, np.ndarray]:
        """Source levels and output switches per channel (none for an instrument without sources)."""
        return {"level": np.zeros(0), "on": np.zeros(0, bool)}

    def handle_line(self, line: str) -> str | None:
        """Execute one line; return the reply line or None."""
        replies: list[str] = []
        for part in line.split(";"):
            command = part.strip()
            if not command:
                continue
            self.log.append(CommandRecord(time.time(), self.name, command))
            command = command.lstrip(":")
            if getattr(self, "lang", "SCPI") != "SCPI" and not re.fullmatch(r"\*(IDN|LANG)\??.*", command, re.I):
                self.errors.append('-113,"Undefined header"')  # another command language: SCPI means nothing
                continue
            for pattern, handler in self._handlers:
                m = pattern.fullmatch(command)
                if m:
                    try:
                        reply = handler(m)
                    except ScpiError as exc:
                        self.errors.append(str(exc))
                        reply = None
                    except Exception as exc:  # noqa: BLE001 - the twin refused (e.g. unstable)
                        self.errors.append(f'-240,"Hardware error: {" ".join(str(exc).split())[:80]}"')
                        reply = "9.91E37" if command.endswith("?") else None  # SCPI's not-a-number
                    if reply is not None:
                        replies.append(reply)
                    break
            else:
                self.errors.append('-113,"Undefined header"')
        return ";".join(replies) if replies else None

    def hang_up(self) -> None:
        """Close every client connection (the server keeps listening)."""
        with self._lock:
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._conns.clear()

    # ------------------------------------------------------------- serving
    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def resource(self) -> str:
        """The VISA resource string a driver opens."""
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def start(self) -> ScpiEmulator:
        """Serve on 127.0.0.1 on an OS-assigned port (daemon threads: they end with the process)."""
        emulator = self

        class Conn(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                with emulator._lock:
                    emulator._conns.add(self.connection)
                try:
                    for raw in self.rfile:
                        reply = emulator.handle_line(raw.decode("ascii", "replace").strip())
                        if emulator.latency:
                            time.sleep(emulator.latency)
                        if reply is None:
                            continue
                        fault = emulator._next_fault()
                        if fault is not None and fault[0] == "hangup":
                            emulator.hang_up()
                            break
                        if fault is not None and fault[0] == "drop":
                            continue
                        if fault is not None and fault[0] == "delay":
                            time.sleep(float(fault[1]))
                        if fault is not None and fault[0] == "garbage":
                            reply = str(fault[1])
                        self.wfile.write(reply.encode("ascii", "replace") + b"\n")
                except OSError:
                    pass
                finally:
                    with emulator._lock:
                        emulator._conns.discard(self.connection)

        server = self._server = _Server(("127.0.0.1", 0), Conn)
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(0.05), name=f"emulator-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self.hang_up()
        self._server = None

    def __enter__(self) -> ScpiEmulator:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def number(text: str) -> float:
    """A SCPI numeric parameter (accepts MIN/MAX/DEF as errors)."""
    try:
        return float(text)
    except ValueError:
        raise ScpiError(-104, "Data type error") from None

"""A scripted transport: asserts the exact sequence of exchanges and fails on leftovers.

``Expected`` stands in for a pyvisa resource (write/query/read/clear/close);
``ExpectedSerial`` for a pyserial port (write/read/in_waiting/reset_input_buffer/close);
``Instrument`` is a command/response fake that executes what it receives (a few SMU
and QDAC commands), records it, and can lose, garble or interrupt its replies.
"""

from __future__ import annotations

from pyvisa import constants
from pyvisa.errors import VisaIOError

TIMEOUT = object()  # a reply that never comes


class Expected:
    """Steps: ``("q", command, reply)``, ``("w", command)``, ``("r", reply)``, ``("clear",)``."""

    def __init__(self, steps: list[tuple]) -> None:
        self.steps = list(steps)
        self.done_steps: list[tuple] = []
        self.resource_name = "FAKE::INSTR"
        self.timeout = 1000.0

    def _next(self, kind: str, command: str | None = None) -> tuple:
        assert self.steps, f"unexpected {kind} {command!r}: the script has ended"
        step = self.steps[0]  # taken only when it matches: a mismatch leaves the script as it was
        assert step[0] == kind, f"expected {step}, got {kind} {command!r}"
        if command is not None:
            assert step[1] == command, f"expected {step[1]!r}, got {command!r}"
        self.steps.pop(0)
        self.done_steps.append(step)
        return step

    @staticmethod
    def _reply(value):
        if value is TIMEOUT:
            raise VisaIOError(constants.StatusCode.error_timeout)
        if isinstance(value, BaseException):
            raise value
        return value

    def query(self, command: str) -> str:
        return self._reply(self._next("q", command)[2])

    def write(self, command: str) -> None:
        self._next("w", command)

    def read(self) -> str:
        return self._reply(self._next("r")[1])

    def clear(self) -> None:
        self._next("clear")

    def close(self) -> None:
        pass

    def assert_done(self) -> None:
        assert not self.steps, f"leftover exchanges: {self.steps}"


def ok(command: str) -> tuple:
    """A confirmed write: ``command;*OPC?`` answered ``1``."""
    return ("q", f"{command};*OPC?", "1")


NO_ERROR = ("q", "SYST:ERR?", '0,"No error"')


class ExpectedSerial:
    """Steps: ``(line_sent, reply_line)``; reply None = no reply (timeout)."""

    def __init__(self, steps: list[tuple[str, str | None]]) -> None:
        self.steps = list(steps)
        self._out = b""

    @property
    def in_waiting(self) -> int:
        return len(self._out)

    def write(self, data: bytes) -> int:
        assert self.steps, f"unexpected line {data!r}: the script has ended"
        sent, reply = self.steps.pop(0)
        assert data == sent.encode() + b"\n", f"expected {sent!r}, got {data!r}"
        if reply is not None:
            self._out += reply.encode() + b"\n"
        return len(data)

    def read(self, n: int = 1) -> bytes:
        chunk, self._out = self._out[:n], self._out[n:]
        return chunk

    def reset_input_buffer(self) -> None:
        self._out = b""

    def close(self) -> None:
        pass

    def assert_done(self) -> None:
        assert not self.steps, f"leftover exchanges: {self.steps}"


class Instrument:
    """A pyvisa-resource fake that *executes* SCPI sets it receives and answers queries from its state.

    ``reply_fault`` is None (answer), ``"lose"`` (commands execute, replies never come),
    ``"garble"`` (commands execute, replies are nonsense) or an exception instance raised
    after the command executed (a Ctrl-C while the reply is on its way).
    """

    def __init__(self, idn: str, state: dict[str, str]) -> None:
        self.idn = idn
        self.state = dict(state)  # query header (without '?') -> value
        self.received: list[str] = []
        self.reply_fault: object = None
        self.resource_name = "FAKE::INSTR"
        self.timeout = 1000.0
        self._late: list[str] = []

    def _execute(self, line: str) -> str:
        replies = []
        for part in line.split(";"):
            command = part.strip()
            self.received.append(command)
            if command == "*IDN?":
                replies.append(self.idn)
            elif command == "*OPC?":
                replies.append("1")
            elif command.endswith("?"):
                replies.append(self.state.get(command[:-1], "0"))
            else:
                header, _, value = command.partition(" ")
                self.state[header] = value
        return ";".join(replies)

    def _answer(self, reply: str) -> str:
        fault = self.reply_fault
        if fault == "lose":
            raise VisaIOError(constants.StatusCode.error_timeout)
        if fault == "garble":
            return "#GARBLED"
        if isinstance(fault, BaseException):
            self.reply_fault = None  # one interrupt
            raise fault
        return reply

    def query(self, command: str) -> str:
        return self._answer(self._execute(command))

    def write(self, command: str) -> None:
        self._late.append(self._execute(command))

    def read(self) -> str:
        return self._answer(self._late.pop(0) if self._late else "")

    def clear(self) -> None:
        self._late.clear()

    def close(self) -> None:
        pass

    def sent(self, prefix: str) -> list[str]:
        """Commands received that start with ``prefix``."""
        return [c for c in self.received if c.startswith(prefix)]

"""One problem of a protocol file, as a line for people and as fields for editors and CI.

The line form is ``file:line:col: key.path: message (hint)``; ``aeqlab validate --json``
writes the fields. Warnings (valid files that may not mean what they say) use the
same form.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from aeqlab.errors import ProtocolError
from aeqlab.protocol.clip import clip_line

_PLACED = re.compile(r"^(?P<file>.*?):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$", re.DOTALL)
_HINT = re.compile(r"^(?P<msg>.*\S) \((?P<hint>[^()]*)\)$", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    """Where a problem is (file, 1-based line and column, key path) and what to do about it."""

    file: str
    line: int
    col: int
    key: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        text = f"{self.key}: {self.message}" if self.key else self.message
        return f"{where}: " + clip_line(text + (f" ({self.hint})" if self.hint else ""))  # the place is never cut

    def as_dict(self) -> dict:
        """The fields, for JSON."""
        return asdict(self)

    @classmethod
    def make(cls, file: str, line: int, col: int, key: str, text: str) -> Problem:
        """A problem whose ``text`` may end in a parenthesised hint, which is split off."""
        m = _HINT.match(text)
        msg, hint = (m["msg"], m["hint"]) if m else (text, "")
        return cls(file, line, col, key, msg, hint)

    @classmethod
    def from_line(cls, text: str) -> Problem:
        """A problem from a ``file:line:col: message`` (or ``file: message``) line that names no key."""
        m = _PLACED.match(text)
        if m:
            return cls.make(m["file"], int(m["line"]), int(m["col"]), "", m["rest"])
        file, sep, rest = text.partition(": ")
        return cls.make(file, 0, 0, "", rest) if sep else cls.make("", 0, 0, "", text)


def protocol_error(problems: list[Problem]) -> ProtocolError:
    """A :class:`ProtocolError` of one line per problem; ``.problems`` holds them as fields."""
    exc = ProtocolError("\n".join(str(p) for p in problems))
    exc.problems = problems  # read by 'aeqlab validate --json'
    return exc

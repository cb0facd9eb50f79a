"""Cutting user text to a readable length before it goes into a message.

A protocol may hold a megabyte-long key or value; an error quotes at most
:data:`MAX_SHOWN` characters of it, with an ellipsis where it was cut.
"""

from __future__ import annotations

import re

MAX_SHOWN = 80  # characters of a key or value an error message quotes
MAX_LINE = 400  # characters of one message line, after cutting each long word
_LONG_WORD = re.compile(rf"\S{{{MAX_SHOWN + 1},}}")


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with ``...``."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip_line(line: str) -> str:
    """A message line with every word longer than :data:`MAX_SHOWN` cut, and the whole at most :data:`MAX_LINE`."""
    return clip(_LONG_WORD.sub(lambda m: clip(m[0]), line), MAX_LINE)

"""Backends: what a protocol runs on, one composition root per kind (sim, emulate, bench)."""

from aeqlab.backends.base import KINDS, choose_kind, open_backend  # noqa: F401
from aeqlab.engine.backend import Backend  # noqa: F401

"""The protocol: its model (pydantic), its YAML loader with line numbers, its JSON Schema, units.

Values are SI floats (volts, amperes, seconds) unless a field says *model units*;
quantity fields also accept strings with units (``5 ms``, ``1 uA``, see
:mod:`aeqlab.protocol.units`). Every mapping forbids unknown keys. One module per job:
:mod:`~aeqlab.protocol.fields` (the strict base, field helpers, number types),
:mod:`~aeqlab.protocol.roles`, :mod:`~aeqlab.protocol.instruments`,
:mod:`~aeqlab.protocol.simulation` (the twin), :mod:`~aeqlab.protocol.dataset`,
:mod:`~aeqlab.protocol.method`, :mod:`~aeqlab.protocol.schedule`,
:mod:`~aeqlab.protocol.safety`, and :mod:`~aeqlab.protocol.document` (the whole file and
the checks that span sections). Loading files (line numbers, ``extends``, one line per
problem) lives in :mod:`aeqlab.protocol.loader`.
"""

from __future__ import annotations

from pathlib import Path

from aeqlab.protocol.dataset import (  # noqa: F401
    BUILTIN_DATASETS,
    BUILTIN_SIZES,
    Dataset,
)
from aeqlab.protocol.document import (  # noqa: F401
    Output,
    Protocol,
)
from aeqlab.protocol.fields import (  # noqa: F401
    Amp,
    Strict,
    Volt,
)
from aeqlab.protocol.instruments import (  # noqa: F401
    InstrumentConfig,
    Ramp,
)
from aeqlab.protocol.method import (  # noqa: F401
    ADAPTIVE_MAX_TAUS,
    Exact,
    Homeostasis,
    Method,
    SettleAdaptive,
    SettleFixed,
    SettlePolicy,
    SettleUntilStable,
    Spsa,
    Tracking,
)
from aeqlab.protocol.roles import (  # noqa: F401
    ROLE_NAMES,
    SOURCE_ROLES,
    Calibration,
    ChannelRef,
    CurrentRole,
    Limits,
    Role,
    Roles,
    VoltageRole,
)
from aeqlab.protocol.safety import (  # noqa: F401
    Safety,
)
from aeqlab.protocol.schedule import (  # noqa: F401
    BetaStep,
    Schedule,
)
from aeqlab.protocol.simulation import (  # noqa: F401
    Epsilon,
    Init,
    KnobErrors,
    Simulation,
    SpringLattice,
)
from aeqlab.protocol.stability import Stability  # noqa: F401


def load_protocol(path: str | Path) -> tuple[Protocol, str]:
    """Load and validate a protocol file.

    Returns
    -------
    (Protocol, str)
        The model, and the resolved protocol text (after ``extends``): what a run records and hashes.

    Raises
    ------
    ProtocolError
        One line per problem, each ``file:line:col: key.path: message (hint)``.
    """
    from aeqlab.protocol.loader import load_protocol as _load  # the YAML reader loads only when a file does

    return _load(path)


def parse_protocol(text: str, source: str = "<protocol>") -> Protocol:
    """Validate protocol text (``extends`` is resolved relative to ``source``'s folder)."""
    from aeqlab.protocol.loader import parse_protocol as _parse

    return _parse(text, source)


__all__ = [
    "Role",
    "Limits",
    "Calibration",
    "SettlePolicy",
    "Volt",
    "Amp",
    "Strict",
    "ChannelRef",
    "VoltageRole",
    "CurrentRole",
    "Roles",
    "Ramp",
    "InstrumentConfig",
    "Epsilon",
    "Init",
    "KnobErrors",
    "SpringLattice",
    "Simulation",
    "Dataset",
    "Homeostasis",
    "Tracking",
    "SettleFixed",
    "SettleUntilStable",
    "SettleAdaptive",
    "Spsa",
    "Exact",
    "Method",
    "BetaStep",
    "Schedule",
    "Stability",
    "Safety",
    "Output",
    "Protocol",
    "load_protocol",
    "parse_protocol",
    "ROLE_NAMES",
    "SOURCE_ROLES",
    "BUILTIN_DATASETS",
    "BUILTIN_SIZES",
    "ADAPTIVE_MAX_TAUS",
]

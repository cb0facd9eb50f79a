"""Training methods by name: the built-ins, registered here, and plug-ins by entry point.

A plug-in is a :class:`~aeqlab.engine.methods.base.TrainingMethod` subclass named in
the entry-point group ``aeqlab.methods`` of an installed distribution::

    [project.entry-points."aeqlab.methods"]
    mymethod = "mypackage.methods:MyMethod"
"""

from __future__ import annotations

from importlib import metadata

from aeqlab.engine.methods.base import TrainingMethod
from aeqlab.errors import InputError

GROUP = "aeqlab.methods"
_BUILTIN: dict[str, type[TrainingMethod]] = {}


def register(cls: type[TrainingMethod]) -> type[TrainingMethod]:
    """Register a built-in method class under its ``name`` (usable as a decorator)."""
    _BUILTIN[cls.name] = cls
    return cls


def _builtins() -> dict[str, type[TrainingMethod]]:
    if not _BUILTIN:
        from aeqlab.engine.methods import aeqprop, exact, spsa

        for cls in (aeqprop.Aeqprop, spsa.Spsa, exact.ExactGradient):
            register(cls)
    return _BUILTIN


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def names() -> list[str]:
    """Every method name a protocol may give: built-ins first, then plug-ins."""
    return list(dict.fromkeys([*_builtins(), *sorted(_entry_points())]))


def get(name: str) -> TrainingMethod:
    """A fresh instance of the method called ``name``."""
    builtins = _builtins()
    if name in builtins:
        return builtins[name]()
    ep = _entry_points().get(name)
    if ep is None:
        raise InputError(f"unknown method {name!r}", where="method.name", hint=f"use one of {', '.join(names())}")
    try:
        cls = ep.load()
    except Exception as exc:  # noqa: BLE001 - a broken plug-in is the user's input, reported in one line
        raise InputError(
            f"the method plug-in {name!r} ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}",
            where="method.name",
            hint="fix or uninstall the package that provides it",
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, TrainingMethod)):
        raise InputError(
            f"the method plug-in {name!r} ({ep.value}) is not a TrainingMethod subclass",
            where="method.name",
            hint="subclass aeqlab.engine.methods.base.TrainingMethod",
        )
    return cls()

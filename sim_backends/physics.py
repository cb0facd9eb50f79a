"""What a twin needs from a physical system, and where twins come from.

A :class:`~sim_backends.twin.Twin` puts instrument ports in front of a *physics object*.
The built-in ones are :class:`~sim_backends.hopfield.HopfieldNetwork`,
:class:`~sim_backends.spring.SpringNetwork` and the energy-defined
:class:`~sim_backends.energy.EnergyNetwork`; a user's own is found by entry point
(group ``aeqlab.twins``) and must satisfy :class:`TwinPhysics`.

A plug-in twin is a *factory*: a callable (a class, or a function) named in the group
``aeqlab.twins`` of an installed distribution::

    [project.entry-points."aeqlab.twins"]
    crossbar = "mypackage.crossbar:make_twin"

called as ``factory(options)`` with the ``simulation.options`` mapping of the protocol
(a plain ``dict``), returning the physics object. Its ``theta`` after construction is the
parameters the system starts with ("as manufactured").
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

import numpy as np

GROUP = "aeqlab.twins"
BUILTIN = ("hopfield", "spring", "energy")


@runtime_checkable
class TwinSpec(Protocol):
    """Sizes of a physical system (what the protocol's roles must match)."""

    @property
    def n_inputs(self) -> int: ...  # written by the inputs role (clamped values x)

    @property
    def n_outputs(self) -> int: ...  # read by the outputs role, and driven by the nudges role

    @property
    def n_params(self) -> int: ...  # floating parameters θ = knobs u = parameter readbacks


@runtime_checkable
class TwinPhysics(Protocol):
    """The physics object a twin drives (model units throughout).

    ``relax(x, u, currents)`` brings the states *and* the floating parameters θ jointly to
    the minimum of the total energy for clamped inputs x, knob settings u (each θ_k coupled
    to its knob by (u_k − θ_k)²/2ε_k) and nudging currents into the outputs (energy
    −currents·outputs), starting from the present state (a physical system keeps its state);
    it accepts the keywords ``tolerance`` and ``max_sweeps`` (gradcheck relaxes tighter) and
    returns an object with ``sweeps`` (int), ``converged`` (bool), ``max_change`` (float) and
    ``energy`` (float or None), e.g. :class:`~sim_backends.hopfield.RelaxInfo`.

    ``states`` is a list of arrays (assignable: snapshots restore it), the last one holding
    the outputs; ``theta`` the floating parameters (assignable); ``outputs`` what the outputs
    role reads. ``stability_ratio(x)`` is ρ at the present state (the joint equilibrium is a
    strict minimum iff ρ < 1; 0.0 for a system that cannot lose stability) and
    ``held_stability_ratio(x, theta)`` ρ at the state reached with θ held (the preflight).
    ``coupling_summary()`` says how the parameters are coupled (for error messages).

    Optional: ``linear_response(x, pulled_from, target) -> (dθ/dβ, ∇L, ε)`` by implicit
    differentiation at the present equilibrium (L = ½‖outputs − target‖²; the nudge pulls
    along ``pulled_from − target``): with it, ``gradcheck`` and the ``exact`` baseline work.
    The object must survive ``copy.deepcopy`` (diagnostics work on a copy).
    """

    spec: TwinSpec
    theta: np.ndarray
    states: list[np.ndarray]

    @property
    def outputs(self) -> np.ndarray: ...

    def relax(self, x: np.ndarray, u: np.ndarray, currents: np.ndarray, **options: Any) -> Any: ...

    def stability_ratio(self, x: np.ndarray) -> float: ...

    def held_stability_ratio(self, x: np.ndarray, theta: np.ndarray) -> float: ...

    def coupling_summary(self) -> str: ...


class TwinLoadError(Exception):
    """A twin name that resolves to nothing usable; ``str`` is one line, ``hint`` says what to do."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def names() -> list[str]:
    """Every twin model a protocol may name: the built-ins, then the installed plug-ins (nothing imported)."""
    return list(dict.fromkeys([*BUILTIN, *sorted(_entry_points())]))


def plugin_factory(name: str) -> Callable[[dict], Any]:
    """The factory of the plug-in twin ``name`` (imports the plug-in's module)."""
    ep = _entry_points().get(name)
    if ep is None:
        raise TwinLoadError(
            f"unknown twin model {name!r}",
            hint=f"use one of {', '.join(names())}, or install the package that provides it (group {GROUP})",
        )
    try:
        factory = ep.load()
    except Exception as exc:  # noqa: BLE001 - a broken plug-in is the user's input, reported in one line
        raise TwinLoadError(
            f"the twin plug-in {name!r} ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}",
            hint="fix or uninstall the package that provides it",
        ) from None
    if not callable(factory):
        raise TwinLoadError(f"the twin plug-in {name!r} ({ep.value}) is not callable", hint="name a factory or class")
    return factory


def check_physics(net: Any, name: str) -> None:
    """Refuse, in one line, a physics object that lacks what the twin needs."""
    missing = [a for a in ("spec", "theta", "states", "outputs") if not hasattr(net, a)]
    missing += [m for m in ("relax", "stability_ratio", "held_stability_ratio", "coupling_summary")
                if not callable(getattr(net, m, None))]
    spec = getattr(net, "spec", None)
    missing += [f"spec.{a}" for a in ("n_inputs", "n_outputs", "n_params") if spec is not None and not hasattr(spec, a)]
    if missing:
        raise TwinLoadError(
            f"the twin {name!r} lacks {', '.join(missing)}",
            hint="see sim_backends.physics.TwinPhysics for what a twin's physics provides",
        )
    if np.shape(net.theta) != (int(spec.n_params),):
        raise TwinLoadError(
            f"the twin {name!r} starts with {np.size(net.theta)} parameters but its spec says {spec.n_params}",
            hint="set theta to the starting parameters in the factory",
        )

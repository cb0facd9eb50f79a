"""The energy-defined twin: a user's physical system given by its internal energy.

The user writes a Python function ``energy(s, theta, x, **constants) -> float``: the
internal energy of their system (no knobs, no nudging) at states ``s`` (a flat vector,
``n_states`` long), floating parameters ``theta`` (``n_params``) and clamped inputs ``x``.
aeqlab adds the rest of the total energy itself::

    F(s, θ) = E(s, θ; x) + Σ_k (u_k − θ_k)²/2ε_k − I·s[outputs]

(each parameter coupled to its knob u_k by a compliance ε_k; the nudging currents I
injected into the output states) and relaxes it: a projected Newton method on (s, θ)
jointly, with L-BFGS-B (scipy) inside the bounds when Newton cannot start (a Hessian that
is not positive definite, or a step that does not lower F).

Derivatives: the user's ``gradient(s, theta, x, **constants) -> (dE/ds, dE/dθ)`` when one
is given; otherwise five-point central differences of E with the step
``h = 2e-4·(1 + |z|)`` per coordinate (truncation ~h⁴·E⁽⁵⁾/30, rounding ~1e-16·|E|/h: about
1e-12 of the energy's scale for smooth energies, 1e-10 for the example's stiff diodes), four
energy evaluations per coordinate: supply the derivatives for speed. The Hessian is the user's
``hessian(s, theta, x, **constants) -> ∂²E`` over (s, θ) (a square matrix, states first) when one is
given, else central differences of the gradient with ``h = 1e-5·(1 + |z|)`` (with an exact
gradient: error ~1e-10 relative; 2·(states + params) gradient calls per Newton step). Supplied
derivatives are checked once, when the twin is built, against finite differences at one point
(``check_derivatives``): a wrong formula is a one-line error, not a run that learns nothing. The gradient
oracle (``linear_response``) and the stability ratio come from that Hessian by implicit
differentiation at the equilibrium; states or parameters at a bound are held.

One module a little over 400 lines: loading the user's functions, relaxing, differentiating
and checking the supplied derivatives are one job, the twin of one energy function.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim_backends.hopfield import RelaxInfo
from sim_backends.physics import TwinLoadError

ON_BOUND = 1e-12  # a coordinate this close to a bound is held there
FD_STEP = 2e-4  # relative step of the finite-difference gradient (five-point stencil)


def load_function(module: str, name: str) -> Callable:
    """``name`` from ``module``: a ``.py`` file path, or an importable module name (imports user code)."""
    try:
        if module.endswith(".py") or "/" in module or "\\" in module:
            path = Path(module)
            key = f"aeqlab_user_twin_{abs(hash(str(path.resolve())))}"
            mod = sys.modules.get(key)
            if mod is None:
                spec = importlib.util.spec_from_file_location(key, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"not a Python file: {path}")
                mod = importlib.util.module_from_spec(spec)
                sys.modules[key] = mod
                try:
                    spec.loader.exec_module(mod)
                except BaseException:
                    sys.modules.pop(key, None)
                    raise
        else:
            mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's module, reported in one line
        raise TwinLoadError(
            f"the energy module {module!r} cannot be imported: {type(exc).__name__}: {exc}",
            hint="fix the module (simulation.energy.module is a .py file next to the protocol, or a module name)",
        ) from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise TwinLoadError(f"the energy module {module!r} has no function {name!r}", hint="name a function it defines")
    return fn


@dataclass(frozen=True)
class EnergySpec:
    """Sizes, couplings and bounds of an energy-defined system."""

    n_inputs: int
    n_states: int
    n_params: int
    output_states: tuple[int, ...]  # indices into s of the outputs, in output order
    eps: np.ndarray  # (n_params,)
    state_bounds: tuple[float, float] = (-np.inf, np.inf)
    param_bounds: tuple[float, float] = (-np.inf, np.inf)

    @property
    def n_outputs(self) -> int:
        return len(self.output_states)

    def eps_vector(self) -> np.ndarray:
        return np.asarray(self.eps, float)


@dataclass
class EnergyNetwork:
    """The physics of an energy-defined twin (see the module docstring)."""

    spec: EnergySpec
    energy_fn: Callable[..., float]
    gradient_fn: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None
    constants: dict[str, Any] = field(default_factory=dict)
    theta0: np.ndarray | None = None
    tolerance: float = 1e-10
    max_sweeps: int = 200
    hessian_fn: Callable[..., np.ndarray] | None = None
    s: np.ndarray = field(init=False)
    theta: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        sp = self.spec
        self.s = np.zeros(sp.n_states)
        lo, hi = sp.state_bounds
        self.s = np.clip(self.s, lo, hi)
        self.theta = np.zeros(sp.n_params) if self.theta0 is None else np.asarray(self.theta0, float).copy()
        self._out = np.asarray(sp.output_states, dtype=np.intp)
        self._hidden = np.setdiff1d(np.arange(sp.n_states), self._out)
        n = sp.n_states + sp.n_params
        self._lo = np.concatenate([np.full(sp.n_states, lo), np.full(sp.n_params, sp.param_bounds[0])])
        self._hi = np.concatenate([np.full(sp.n_states, hi), np.full(sp.n_params, sp.param_bounds[1])])
        self._n = n
        self.evaluations = 0  # energy or gradient evaluations of the user's functions

    # ----------------------------------------------------------------- views
    @property
    def outputs(self) -> np.ndarray:
        return self.s[self._out]

    @property
    def states(self) -> list[np.ndarray]:
        """The hidden states, then the outputs (the last array: the twin's jump check treats it as outputs)."""
        if self._hidden.size == 0:
            return [self.s[self._out]]
        return [self.s[self._hidden], self.s[self._out]]

    @states.setter
    def states(self, value: list[np.ndarray]) -> None:
        s = np.empty(self.spec.n_states)
        if self._hidden.size:
            s[self._hidden] = np.asarray(value[0], float)
        s[self._out] = np.asarray(value[-1], float)
        self.s = s

    # ------------------------------------------------------------ the energy
    def _split(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return z[: self.spec.n_states], z[self.spec.n_states :]

    def internal_energy(self, z: np.ndarray, x: np.ndarray) -> float:
        s, th = self._split(z)
        self.evaluations += 1
        return float(self.energy_fn(s.copy(), th.copy(), x, **self.constants))

    def internal_gradient(self, z: np.ndarray, x: np.ndarray) -> np.ndarray:
        """∇E over (s, θ): the user's derivatives, or central differences of E."""
        if self.gradient_fn is not None:
            s, th = self._split(z)
            self.evaluations += 1
            gs, gt = self.gradient_fn(s.copy(), th.copy(), x, **self.constants)
            return np.concatenate([np.asarray(gs, float).ravel(), np.asarray(gt, float).ravel()])
        g = np.empty(self._n)
        h = FD_STEP * (1.0 + np.abs(z))
        for i in range(self._n):  # the five-point stencil: truncation ~h⁴·E⁽⁵⁾/30, rounding ~1e-16·|E|/h
            e = []
            for k in (2, 1, -1, -2):
                w = z.copy()
                w[i] += k * h[i]
                e.append(self.internal_energy(w, x))
            g[i] = (-e[0] + 8 * e[1] - 8 * e[2] + e[3]) / (12 * h[i])
        return g

    def internal_hessian(self, z: np.ndarray, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """∂²E over the coordinates ``idx``: the user's Hessian, or central differences of the gradient."""
        if self.hessian_fn is not None:
            s, th = self._split(z)
            self.evaluations += 1
            full = np.asarray(self.hessian_fn(s.copy(), th.copy(), x, **self.constants), float)
            if full.shape != (self._n, self._n):
                raise TwinLoadError(
                    f"the hessian function returned shape {full.shape}, not ({self._n}, {self._n})",
                    hint="return the full square matrix over the states, then the parameters",
                )
            return full[np.ix_(idx, idx)]
        return self._fd_hessian(z, x, idx)

    def _fd_hessian(self, z: np.ndarray, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        h = 1e-5 * (1.0 + np.abs(z))
        cols = []
        for i in idx:
            zp, zm = z.copy(), z.copy()
            zp[i] += h[i]
            zm[i] -= h[i]
            cols.append((self.internal_gradient(zp, x) - self.internal_gradient(zm, x))[idx] / (2 * h[i]))
        H = np.array(cols).reshape(len(idx), len(idx))
        return 0.5 * (H + H.T)

    def check_derivatives(self, seed: int = 0) -> None:
        """Compare the user's gradient and Hessian with finite differences at one point inside the bounds.

        The point: the starting θ, states and inputs drawn in [−0.5, 0.5] (states clipped to
        their bounds). Tolerances sit far above the differences' own error (1e-6 relative for
        the gradient, 1e-4 for the Hessian) and far below any formula mistake.
        """
        if self.gradient_fn is None and self.hessian_fn is None:
            return
        rng = np.random.default_rng(seed)
        sp = self.spec
        x = rng.uniform(-0.5, 0.5, sp.n_inputs)
        s = np.clip(rng.uniform(-0.5, 0.5, sp.n_states), *sp.state_bounds)
        z = np.concatenate([s, self.theta])
        fd = EnergyNetwork(sp, self.energy_fn, None, self.constants, self.theta)
        if self.gradient_fn is not None:
            mine, ref = self.internal_gradient(z, x), fd.internal_gradient(z, x)
            self._compare("gradient", mine, ref, 1e-6)
        if self.hessian_fn is not None:
            idx = np.arange(self._n)
            mine = self.internal_hessian(z, x, idx)
            ref = EnergyNetwork(sp, self.energy_fn, self.gradient_fn, self.constants, self.theta)._fd_hessian(z, x, idx)
            self._compare("hessian", mine, ref, 1e-4)

    def _compare(self, what: str, mine: np.ndarray, ref: np.ndarray, rel: float) -> None:
        scale = max(float(np.max(np.abs(ref))), 1e-12)
        err = np.abs(np.asarray(mine, float) - ref)
        worst = np.unravel_index(int(np.argmax(err)), err.shape)
        if err[worst] > rel * scale:
            names = [f"s[{i}]" for i in range(self.spec.n_states)] + [f"theta[{i}]" for i in range(self.spec.n_params)]
            where = ", ".join(names[i] for i in worst)
            raise TwinLoadError(
                f"the {what} function differs from finite differences of the "
                f"{'energy' if what == 'gradient' else 'gradient'} by {err[worst]:.3g} at {where}, "
                f"relative {err[worst] / scale:.2g} > {rel:g}",
                hint=f"fix its formula, or remove simulation.energy.{what} to use finite differences",
            )

    def _total(self, z, x, u, currents, grad: bool = True):
        """F(z) = E + Σ(u − θ)²/2ε − I·s_out, and its gradient."""
        sp = self.spec
        s, th = self._split(z)
        e = self.internal_energy(z, x) + float(np.sum((u - th) ** 2 / (2 * sp.eps))) - float(currents @ s[self._out])
        return (e, self._total_gradient(z, x, u, currents)) if grad else (e, None)

    def _total_gradient(self, z, x, u, currents) -> np.ndarray:
        """∇F(z), for a point whose F is known already (an accepted line-search trial)."""
        sp = self.spec
        g = self.internal_gradient(z, x)
        g[sp.n_states :] += (z[sp.n_states :] - u) / sp.eps
        g[self._out] -= currents
        return g

    def _coupling_curvature(self) -> np.ndarray:
        return np.concatenate([np.zeros(self.spec.n_states), 1.0 / self.spec.eps_vector()])

    # ------------------------------------------------------------ relaxation
    def relax(
        self,
        x: np.ndarray,
        u: np.ndarray,
        currents: np.ndarray,
        *,
        tolerance: float | None = None,
        max_sweeps: int | None = None,
        hold_theta: bool = False,
    ) -> RelaxInfo:
        """Relax states and parameters jointly to the minimum of F (with ``hold_theta``, θ held at u)."""
        tol = self.tolerance if tolerance is None else tolerance
        cap = self.max_sweeps if max_sweeps is None else max_sweeps
        x, u, currents = (np.asarray(a, float) for a in (x, u, currents))
        z = np.clip(np.concatenate([self.s, u if hold_theta else self.theta]), self._lo, self._hi)
        movable = np.ones(self._n, bool)
        if hold_theta:  # θ = u exactly (the knobs infinitely stiff): only the states move
            movable[self.spec.n_states :] = False
        z0 = z.copy()
        z, sweeps, converged, change, energy = self._newton(z, x, u, currents, movable, tol, cap)
        if not converged:
            z = self._lbfgsb(z, x, u, currents, movable, tol)
            z, more, converged, change, energy = self._newton(z, x, u, currents, movable, tol, cap)
            sweeps += more + 1
        self.s, self.theta = self._split(z.copy())
        self.s, self.theta = self.s.copy(), self.theta.copy()
        change = float(np.max(np.abs(z - z0), initial=0.0)) if sweeps else change
        return RelaxInfo(sweeps, converged, change, energy)

    def _free(self, z: np.ndarray, g: np.ndarray, movable: np.ndarray) -> np.ndarray:
        """Coordinates Newton moves: movable, and not held on a bound by a gradient pushing outward."""
        at_lo = (z <= self._lo + ON_BOUND) & (g > 0)
        at_hi = (z >= self._hi - ON_BOUND) & (g < 0)
        return np.flatnonzero(movable & ~at_lo & ~at_hi)

    def _newton(self, z, x, u, currents, movable, tol, cap):
        """Projected Newton with backtracking; (z, steps, converged, last step, F)."""
        energy, g = self._total(z, x, u, currents)
        curv = self._coupling_curvature()
        step_max = np.inf
        for k in range(1, cap + 1):
            idx = self._free(z, g, movable)
            if idx.size == 0 or np.max(np.abs(g[idx])) <= 1e-3 * tol:
                return z, k - 1, True, 0.0, energy
            H = self.internal_hessian(z, x, idx) + np.diag(curv[idx])
            try:
                L = np.linalg.cholesky(H)
            except np.linalg.LinAlgError:
                return z, k - 1, False, step_max, energy
            step = -np.linalg.solve(L.T, np.linalg.solve(L, g[idx]))
            t = 1.0
            while True:
                trial = z.copy()
                trial[idx] = np.clip(z[idx] + t * step, self._lo[idx], self._hi[idx])
                e_new, _ = self._total(trial, x, u, currents, grad=False)
                decrease = float(g[idx] @ (trial[idx] - z[idx]))
                # near the minimum F changes below its rounding: the gradient decides there
                if e_new <= energy + 1e-4 * decrease or -decrease < 1e-13 * (1.0 + abs(energy)):
                    break
                t *= 0.5
                if t < 1e-8:
                    return z, k, False, step_max, energy
            previous, step_max = step_max, float(np.max(np.abs(trial - z)))
            z, energy = trial, e_new
            g = self._total_gradient(z, x, u, currents)
            # done; or at the noise floor of finite-difference derivatives (steps tiny and no longer shrinking)
            if step_max <= tol or (self.gradient_fn is None and step_max < 1e-8 and step_max > 0.25 * previous):
                return z, k, True, step_max, energy
        return z, cap, False, step_max, energy

    def _lbfgsb(self, z, x, u, currents, movable, tol):
        from scipy.optimize import minimize

        fixed = z.copy()
        idx = np.flatnonzero(movable)

        def fun(v):
            w = fixed.copy()
            w[idx] = v
            e, g = self._total(w, x, u, currents)
            return e, g[idx]

        bounds = [(None if not np.isfinite(a) else a, None if not np.isfinite(b) else b)
                  for a, b in zip(self._lo[idx], self._hi[idx])]
        res = minimize(fun, z[idx], jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 5000, "gtol": min(1e-10, tol), "ftol": 1e-15})
        out = fixed.copy()
        out[idx] = res.x
        return out

    # ----------------------------------------------------------- diagnostics
    def _blocks(self, x: np.ndarray):
        """At the present equilibrium: the free states, H_ss, H_sθ (free states × all θ), H_θθ."""
        z = np.concatenate([self.s, self.theta])
        sp = self.spec
        ns = sp.n_states
        s_free = np.flatnonzero((self.s > self._lo[:ns] + ON_BOUND) & (self.s < self._hi[:ns] - ON_BOUND))
        idx = np.concatenate([s_free, ns + np.arange(sp.n_params)])
        H = self.internal_hessian(z, np.asarray(x, float), idx)
        m = s_free.size
        return s_free, H[:m, :m], H[:m, m:], H[m:, m:]

    def stability_ratio(self, x: np.ndarray) -> float:
        """ρ = λ_max(H_ss⁻¹ H_sθ (Σ⁻¹ + H_θθ)⁻¹ H_θs) at the present state (a strict joint minimum iff ρ < 1)."""
        s_free, Hss, Hst, Htt = self._blocks(x)
        if s_free.size == 0:
            return 0.0
        try:
            np.linalg.cholesky(Hss)
        except np.linalg.LinAlgError:
            return float("inf")
        D = np.diag(1.0 / self.spec.eps_vector()) + Htt
        M = np.linalg.solve(Hss, Hst @ np.linalg.solve(D, Hst.T))
        return float(np.max(np.linalg.eigvals(M).real))

    def held_stability_ratio(self, x: np.ndarray, theta: np.ndarray) -> float:
        """ρ at the state the system settles to with its parameters held at θ (no nudging)."""
        probe = EnergyNetwork(self.spec, self.energy_fn, self.gradient_fn, self.constants, theta,
                              self.tolerance, self.max_sweeps, self.hessian_fn)
        probe.s = self.s.copy()
        probe.relax(x, np.asarray(theta, float), np.zeros(self.spec.n_outputs), hold_theta=True)
        return probe.stability_ratio(x)

    def linear_response(self, x: np.ndarray, pulled_from: np.ndarray, target: np.ndarray):
        """(dθ/dβ at fixed knobs, ∇L at fixed θ, ε) by implicit differentiation at the present equilibrium.

        Parameters on a bound are held (dθ/dβ = 0 there); states on a bound have no sensitivity.
        """
        sp = self.spec
        s_free, Hss, Hst, Htt = self._blocks(x)
        eps = sp.eps_vector()
        P = sp.n_params
        pos = {int(k): j for j, k in enumerate(s_free)}
        d_pull, d_true = np.zeros(s_free.size), np.zeros(s_free.size)
        for k, state in enumerate(self._out):
            j = pos.get(int(state))
            if j is not None:
                d_pull[j] = pulled_from[k] - target[k]
                d_true[j] = self.outputs[k] - target[k]
        if s_free.size == 0:
            return np.zeros(P), np.zeros(P), eps
        grad = -Hst.T @ np.linalg.solve(Hss, d_true)
        th_free = (self.theta > self._lo[sp.n_states :] + ON_BOUND) & (self.theta < self._hi[sp.n_states :] - ON_BOUND)
        t = np.flatnonzero(th_free)
        m = s_free.size
        K = np.block([[Hss, Hst[:, t]], [Hst[:, t].T, Htt[np.ix_(t, t)] + np.diag(1.0 / eps[t])]])
        dz = -np.linalg.solve(K, np.concatenate([d_pull, np.zeros(t.size)]))
        dtheta = np.zeros(P)
        dtheta[t] = dz[m:]
        return dtheta, grad, eps

    def coupling_summary(self) -> str:
        eps = self.spec.eps_vector()
        return f"epsilon {eps[0]:g}" if np.all(eps == eps[0]) else f"epsilon in [{eps.min():g}, {eps.max():g}]"

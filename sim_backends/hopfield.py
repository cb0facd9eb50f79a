"""A layered Hopfield-like network whose parameters float.

Energy (model units), for layers s_0 = x (clamped input), s_1 ... s_L (s_L the outputs)::

    E(θ, s) = ½ Σ_l ‖s_l‖² − Σ_l b_l·s_l − Σ_l s_{l-1}ᵀ W_l s_l − I·s_L

with hidden units clipped to ``hidden_clip`` and outputs to ``output_clip``, ``I`` the
nudging currents injected into the output nodes. Every weight and bias is a
*floating* parameter coupled to its knob ``u`` by ‖u − θ‖²/2ε (ε per parameter group),
so the total energy is ``E(θ, s) + Σ_g ‖u_g − θ_g‖²/2ε_g``.

E is linear in θ, so θ is eliminated exactly: at fixed s the minimising θ is
``θ = u − ε ∂θE(s)`` and the reduced state energy is

    Ẽ(s) = E(u, s) − ½ Σ_g ε_g ‖∂θ_g E(s)‖²,

where ‖∂W_l E‖² = ‖s_{l-1}‖² ‖s_l‖² and ‖∂b_l E‖² = ‖s_l‖². Given its neighbours, each
layer's reduced energy is a separable quadratic (one curvature per layer), so exact
block-coordinate descent on Ẽ is the joint relaxation of states *and* parameters.
Newton steps on the units inside their boxes (the clipped ones held), accepted only when
they lower Ẽ, speed it up. Where numba is installed a compiled kernel
(:mod:`sim_backends.kernels`) runs the same algorithm in one call, loaded on the first
relaxation; the numpy code below is its reference and its fallback.

Nothing here knows about phases, targets or learning: it relaxes to the minimum
of the total energy for the inputs, knobs and currents it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim_backends import kernels as _kernels  # (imports no compiler: the kernel loads on first use)
from sim_backends.hopfield_spec import HopfieldSpec, half_xavier, split_params  # noqa: F401  (their home before)


@dataclass
class RelaxInfo:
    """How a relaxation went. ``energy`` is the total energy reached, or None where the physics
    does not evaluate it on every relaxation (the Hopfield network: ``total_energy`` gives it)."""

    sweeps: int
    converged: bool
    max_change: float
    energy: float | None


@dataclass
class HopfieldNetwork:
    """The physics: states and floating parameters relaxing jointly.

    ``states[l]`` is layer l+1 (hidden layers, then outputs); ``theta`` the floating
    parameters in the flat order of :func:`split_params`. :meth:`relax` binds new arrays to
    both and never writes into the ones it replaces (``fresh_arrays``: a caller may keep them).

    ``kernel``: ``"auto"`` relaxes with the compiled kernel of :mod:`sim_backends.kernels`
    when numba is installed (the same algorithm, states equal to rounding), ``"numpy"``
    always with numpy, ``"numba"`` insists on the kernel.
    """

    fresh_arrays = True  # a class attribute, not a field

    spec: HopfieldSpec
    tolerance: float = 1e-9
    max_sweeps: int = 10_000
    kernel: str = "auto"  # "auto": the compiled kernel when numba is there; "numpy": always the numpy path
    states: list[np.ndarray] = field(init=False)
    theta: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if self.kernel not in ("auto", "numba", "numpy"):
            raise ValueError(f"kernel {self.kernel!r}: use 'auto', 'numba' or 'numpy'")
        spec = self.spec
        self.states = [np.zeros(n) for n in spec.layers[1:]]
        self.theta = np.zeros(spec.n_params)
        self.last_moves: list[float] | None = None  # each layer's largest move in the last relaxation
        self._eps = spec.eps_vector()
        self._lo = [spec.clip_bounds(l + 1)[0] for l in range(spec.n_layers)]
        self._hi = [spec.clip_bounds(l + 1)[1] for l in range(spec.n_layers)]
        # the flat layout the compiled kernel works on
        w_sizes = [a * b for a, b in spec.weight_shapes]
        w_off = np.concatenate([[0], np.cumsum(w_sizes)])
        self._layout = (
            np.asarray(spec.layers, np.int64),
            w_off[:-1].astype(np.int64),
            (w_off[-1] + np.concatenate([[0], np.cumsum(spec.layers[1:])])[:-1]).astype(np.int64),
            np.asarray(spec.eps_weights, float),
            np.asarray(spec.eps_biases, float),
            np.asarray(self._lo, float),
            np.asarray(self._hi, float),
        )
        self._state_off = np.concatenate([[0], np.cumsum(spec.layers[1:])])

    def _compiled(self):
        """The compiled relaxation, or None for the numpy path (the kernel lives in its module, not on
        the instance: a deep copy of the network copies no compiled code)."""
        if self.kernel == "numpy":
            return None
        fn = _kernels.relax_kernel()
        if fn is None and self.kernel == "numba":
            raise RuntimeError(f"the compiled relaxation kernel is unavailable: {_kernels.kernel_status()}")
        return fn

    # ------------------------------------------------------------------ energy
    def theta_at(self, x: np.ndarray, u: np.ndarray, states: list[np.ndarray] | None = None) -> np.ndarray:
        """The minimising parameters θ = u − ε ∂θE(s) for the given states."""
        s = self.states if states is None else states
        return u - self._eps * self.param_gradient(x, s)

    def param_gradient(self, x: np.ndarray, states: list[np.ndarray]) -> np.ndarray:
        """∂E/∂θ at the given states (flat order)."""
        pre = [x] + states[:-1]
        grads = [-np.outer(p, q).ravel() for p, q in zip(pre, states)]
        grads += [-q for q in states]
        return np.concatenate(grads)

    def energy(self, theta: np.ndarray, x: np.ndarray, states: list[np.ndarray], currents: np.ndarray) -> float:
        """E(θ, s) − I·s_L (without the knob coupling)."""
        weights, biases = split_params(self.spec, theta)
        pre = [x] + states[:-1]
        e = 0.0
        for s, b, w, p in zip(states, biases, weights, pre):
            e += 0.5 * s @ s - b @ s - p @ w @ s
        return float(e - currents @ states[-1])

    def total_energy(self, x: np.ndarray, u: np.ndarray, currents: np.ndarray, states: list[np.ndarray]) -> float:
        """E(θ, s) + Σ‖u−θ‖²/2ε − I·s_L at the minimising θ, i.e. the reduced energy Ẽ(s).

        Evaluated in closed form, without forming θ: Ẽ(s) = E(u, s) − ½Σ_g ε_g‖∂θ_g E(s)‖².
        """
        uw, ub = split_params(self.spec, u)
        return self._reduced_energy(x @ uw[0], float(x @ x), uw, ub, currents, states)

    def _reduced_energy(self, drive0, x_sq, uw, ub, currents, states) -> float:
        """Ẽ(s), with ``drive0`` = xᵀU_1 (the input's drive of the first layer)."""
        ew, eb = self.spec.eps_weights, self.spec.eps_biases
        e = 0.0
        prev_sq = x_sq
        for l, s in enumerate(states):
            sq = float(s @ s)
            drive = drive0 if l == 0 else states[l - 1] @ uw[l]
            e += 0.5 * sq - float((ub[l] + drive) @ s) - 0.5 * (ew[l] * prev_sq * sq + eb[l] * sq)
            prev_sq = sq
        return float(e - currents @ states[-1])

    # -------------------------------------------------------------- relaxation
    def relax(
        self,
        x: np.ndarray,
        u: np.ndarray,
        currents: np.ndarray,
        *,
        tolerance: float | None = None,
        max_sweeps: int | None = None,
    ) -> RelaxInfo:
        """Relax states and parameters jointly to the minimum of the total energy.

        Starts from the present states (a physical system keeps its state). Stops when
        no state moves by more than ``tolerance`` in a sweep.
        """
        tol = self.tolerance if tolerance is None else tolerance
        cap = self.max_sweeps if max_sweeps is None else max_sweeps
        kernel = self._compiled()
        if kernel is not None:
            return self._relax_compiled(kernel, x, u, currents, tol, cap)
        return self._relax_numpy(x, u, currents, tol, cap)

    def _relax_compiled(self, kernel, x, u, currents, tol: float, cap: int) -> RelaxInfo:
        theta = np.empty(self._eps.shape[0])
        moved = np.empty(self.spec.n_layers)
        flat, sweeps, converged, change = kernel(
            np.ascontiguousarray(x, dtype=float),
            np.ascontiguousarray(u, dtype=float),
            np.ascontiguousarray(currents, dtype=float),
            np.concatenate(self.states).astype(float, copy=False),
            *self._layout,
            float(tol),
            int(cap),
            theta,
            moved,
        )
        off = self._state_off
        self.states = [flat[off[l] : off[l + 1]] for l in range(self.spec.n_layers)]
        self.theta = theta
        self.last_moves = moved.tolist()
        return RelaxInfo(int(sweeps), bool(converged), float(change), None)

    def _relax_numpy(self, x, u, currents, tol: float, cap: int) -> RelaxInfo:
        spec = self.spec
        L = spec.n_layers
        uw, ub = split_params(spec, u)
        ew, eb = spec.eps_weights, spec.eps_biases
        s = [v.copy() for v in self.states]
        x = np.asarray(x, dtype=float)
        x_sq = float(x @ x)
        drive0 = x @ uw[0]  # constant during the relaxation
        order = list(range(0, L, 2)) + list(range(1, L, 2))
        converged, change, sweeps = False, np.inf, 0
        last_active: tuple | None = None
        for sweeps in range(1, cap + 1):
            change = 0.0
            for l in order:
                prev_sq = x_sq if l == 0 else float(s[l - 1] @ s[l - 1])
                a = 1.0 - eb[l] - ew[l] * prev_sq
                c = ub[l] + (drive0 if l == 0 else s[l - 1] @ uw[l])
                if l + 1 < L:
                    nxt = s[l + 1]
                    a -= ew[l + 1] * float(nxt @ nxt)
                    c = c + uw[l + 1] @ nxt
                else:
                    c = c + currents
                new = _box_argmin(a, c, self._lo[l], self._hi[l])
                change = max(change, float(np.abs(new - s[l]).max()))
                s[l] = new
            if change <= tol:
                converged = True
                break
            # polish when the active set changed (and every 4th sweep): Newton on the free units
            key = tuple(((v <= lo) | (v >= hi)).tobytes() for v, lo, hi in zip(s, self._lo, self._hi))
            if key != last_active or sweeps % 4 == 0:
                last_active = key
                proposal = self._newton_polish(x, x_sq, drive0, uw, ub, currents, s, tol)
                if proposal is not None:
                    e_old = self._reduced_energy(drive0, x_sq, uw, ub, currents, s)
                    e_new = self._reduced_energy(drive0, x_sq, uw, ub, currents, proposal)
                    if e_new <= e_old + 1e-15 * abs(e_old):
                        s = proposal
        self.last_moves = [float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(s, self.states)]
        self.states = s
        self.theta = self.theta_at(x, u, s)
        return RelaxInfo(sweeps, converged, change, None)

    def _newton_polish(self, x, x_sq, drive0, uw, ub, currents, s, tol):
        """Stationary point of Ẽ with the clipped units held, by Newton steps on the free units.

        The Hessian of Ẽ on the free units is block tridiagonal: one curvature a_l per layer on
        the diagonal, −W_{l+1} − 2ε_{l+1} s_l s_{l+1}ᵀ between neighbours (the curvatures depend
        on the neighbours' norms). Block elimination from the first layer (whose block is a
        scalar) leaves dense systems of the later layers' sizes only. Returns the solution
        clipped to the boxes (a proposal), or None when nothing is free or a block is singular.
        """
        spec = self.spec
        L = spec.n_layers
        ew, eb = spec.eps_weights, spec.eps_biases
        idx = [np.flatnonzero((v > lo) & (v < hi)) for v, lo, hi in zip(s, self._lo, self._hi)]
        if not any(i.size for i in idx):
            return None
        trial = [v.copy() for v in s]
        # the weights between free units do not change during the polish: gathered once
        neg_sub = [-uw[l + 1][np.ix_(idx[l], idx[l + 1])] for l in range(L - 1)]
        last_step = 0.0
        for _ in range(4):
            sq = [float(v @ v) for v in trial]
            curv = np.empty(L)
            rhs = []
            for l in range(L):
                prev_sq = x_sq if l == 0 else sq[l - 1]
                a = 1.0 - eb[l] - ew[l] * prev_sq
                c = ub[l] + (drive0 if l == 0 else trial[l - 1] @ uw[l])
                if l + 1 < L:
                    a -= ew[l + 1] * sq[l + 1]
                    c = c + uw[l + 1] @ trial[l + 1]
                else:
                    c = c + currents
                curv[l] = a
                rhs.append((c - a * trial[l])[idx[l]])  # −∇Ẽ on the free units
            coupling = [
                neg_sub[l] - 2.0 * ew[l + 1] * np.outer(trial[l][idx[l]], trial[l + 1][idx[l + 1]])
                for l in range(L - 1)
            ]
            delta = _block_tridiagonal_solve(curv, coupling, rhs)
            if delta is None:
                return None
            step = 0.0
            for l in range(L):
                if idx[l].size:
                    trial[l][idx[l]] += delta[l]
                    step = max(step, float(np.abs(delta[l]).max()))
            # Newton converges quadratically, step_{k+1} ≈ C·step_k²: stop when the next step
            # would be negligible (C estimated from the last two steps and taken as at most 1;
            # stopping early costs only speed: the energy check and the next sweep decide)
            rate = min(1.0, step / last_step**2) if last_step > 0.0 else 1.0
            if step <= 0.01 * tol or rate * step * step <= 0.01 * tol:
                break
            last_step = step
        return [np.clip(v, lo, hi) for v, lo, hi in zip(trial, self._lo, self._hi)]

    # ------------------------------------------------------------- diagnostics
    @property
    def outputs(self) -> np.ndarray:
        return self.states[-1]

    def stability_ratio(self, x: np.ndarray) -> float:
        """ρ = λ_max(H_FF⁻¹ E_sθ Σ E_θs) at the present state; the equilibrium is a minimum iff ρ < 1."""
        from sim_backends import oracle

        return oracle.fast_stability_ratio(self, x)

    def held_stability_ratio(self, x: np.ndarray, theta: np.ndarray) -> float:
        """ρ at the state the network settles to with its parameters *held* at θ (what homeostasis does).

        A joint relaxation from there may already have slid to a saturated minimum (where ρ is 0);
        this is the number that says whether it would.
        """
        spec = self.spec
        n = spec.n_layers
        held = HopfieldNetwork(
            HopfieldSpec(spec.layers, (1e-15,) * n, (1e-15,) * n, spec.hidden_clip, spec.output_clip),
            tolerance=max(self.tolerance, 1e-10),
            max_sweeps=self.max_sweeps,
        )
        held.relax(x, theta, np.zeros(spec.n_outputs))
        probe = HopfieldNetwork(spec)
        probe.states, probe.theta = held.states, np.asarray(theta, float)
        return probe.stability_ratio(x)

    def linear_response(self, x: np.ndarray, pulled_from: np.ndarray, target: np.ndarray):
        """(dθ/dβ at fixed knobs, ∇L at fixed θ, ε) by implicit differentiation at the present equilibrium."""
        from sim_backends import oracle

        lin = oracle.linearise(self, x)
        return (oracle.theta_velocity(lin, pulled_from, target), oracle.loss_gradient(lin, self.outputs, target),
                lin.eps)

    def coupling_summary(self) -> str:
        return f"epsilon weights {list(self.spec.eps_weights)}, biases {list(self.spec.eps_biases)}"

    def free_mask(self) -> np.ndarray:
        """Units strictly inside their box (the set where implicit differentiation applies)."""
        return np.concatenate([(v > lo) & (v < hi) for v, lo, hi in zip(self.states, self._lo, self._hi)])


def _box_argmin(a: float, c: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Per-unit argmin of ½a·s² − c·s on [lo, hi] (a is one curvature for the whole layer)."""
    if a > 0.0:
        v = c / a
        np.maximum(v, lo, out=v)
        return np.minimum(v, hi, out=v)
    # concave or flat: the minimum sits at a corner
    e_lo = 0.5 * a * lo * lo - c * lo
    e_hi = 0.5 * a * hi * hi - c * hi
    return np.where(e_lo <= e_hi, lo, hi)


def _block_tridiagonal_solve(
    curv: np.ndarray, coupling: list[np.ndarray], rhs: list[np.ndarray]
) -> list[np.ndarray] | None:
    """Solve H·Δ = r for H with diagonal blocks curv[l]·I and off-diagonal blocks coupling[l] (l, l+1).

    Eliminates layer by layer from the first: D_0 = a_0·I, D_{l+1} = a_{l+1}·I − B_lᵀ D_l⁻¹ B_l.
    Returns None when a block is singular.
    """
    L = len(curv)
    ys: list[np.ndarray] = []
    zs: list[np.ndarray] = []
    D: np.ndarray | None = None  # None: the scalar block of the first layer
    r = rhs[0]
    try:
        for l in range(L):
            if l > 0:
                B = coupling[l - 1]
                D = -(B.T @ ys[-1])
                D.flat[:: D.shape[0] + 1] += curv[l]
                r = rhs[l] - B.T @ zs[-1]
            if l + 1 < L:
                B = coupling[l]
                if D is None:
                    if curv[0] == 0.0 and r.size:
                        return None
                    a0 = curv[0] if curv[0] != 0.0 else 1.0  # (nothing free in the first layer)
                    ys.append(B / a0)
                    zs.append(r / a0)
                else:
                    ys.append(_solve(D, B))
                    zs.append(_solve(D, r))
        if D is None:
            if curv[0] == 0.0 and r.size:
                return None
            last = r / (curv[0] if curv[0] != 0.0 else 1.0)
        else:
            last = _solve(D, r)
    except np.linalg.LinAlgError:
        return None
    out = [last]
    for l in range(L - 2, -1, -1):
        out.append(zs[l] - ys[l] @ out[-1])
    out.reverse()
    return out


def _solve(D: np.ndarray, b: np.ndarray) -> np.ndarray:
    return b.copy() if D.size == 0 else np.linalg.solve(D, b)

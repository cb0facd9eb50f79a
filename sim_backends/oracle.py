"""Exact gradients of the twin by implicit differentiation at equilibrium.

Used by ``gradcheck``, tests and benchmarks only: the training path never sees it.

Notation (flat parameter order of :mod:`.hopfield`): at an equilibrium s of the network
with parameters θ,

* ``H`` = ∂²E/∂s² restricted to the unclipped units F (E is quadratic in s at fixed θ);
* ``J`` = ∂²E/∂θ∂s (P × |F|), so ``E_θs = J``;
* ``Σ`` = diag(ε);
* loss ``L(θ) = C(s*(θ))`` with ``C = ½‖s_L − y‖²``; ``∇L = −J H⁻¹ ∂C/∂s``;
* ``F_θθ = −J H⁻¹ Jᵀ`` the Hessian in θ of the free energy.

With the parameters floating at fixed knobs, the joint equilibrium moves with the
nudging strength β as ``dθ/dβ = −(I + Σ F_θθ)⁻¹ Σ ∇L``, evaluated in state space by the
push-through identity ``(I + ΣF)⁻¹ Σ Jᵀ... = Σ J (H − G)⁻¹`` with ``G = Jᵀ Σ J``.
The joint equilibrium is a strict minimum iff ``ρ = λ_max(H⁻¹ G) < 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim_backends.hopfield_spec import split_params

if TYPE_CHECKING:
    from sim_backends.hopfield import HopfieldNetwork


@dataclass
class Linearisation:
    """What implicit differentiation needs at one equilibrium."""

    free: np.ndarray  # mask over all state units
    H: np.ndarray  # |F| × |F|
    J: np.ndarray  # P × |F|
    eps: np.ndarray  # P
    outputs_free: np.ndarray  # mask over free units that are outputs
    n_outputs: int


def state_hessian(net: HopfieldNetwork, theta: np.ndarray) -> np.ndarray:
    """∂²E/∂s² over all state units (block tridiagonal: I on the diagonal, −W_l off it)."""
    spec = net.spec
    sizes = spec.layers[1:]
    off = np.concatenate([[0], np.cumsum(sizes)])
    n = off[-1]
    H = np.eye(n)
    weights, _ = split_params(spec, theta)
    for l in range(1, spec.n_layers):
        a, b = slice(off[l - 1], off[l]), slice(off[l], off[l + 1])
        H[a, b] = -weights[l]
        H[b, a] = -weights[l].T
    return H


def mixed_jacobian(net: HopfieldNetwork, x: np.ndarray, states: list[np.ndarray]) -> np.ndarray:
    """∂²E/∂θ∂s, dense (P × n_states)."""
    spec = net.spec
    sizes = spec.layers[1:]
    off = np.concatenate([[0], np.cumsum(sizes)])
    P, n = spec.n_params, off[-1]
    J = np.zeros((P, n))
    pre = [np.asarray(x, float)] + states[:-1]
    pos = 0
    for l, (p, q) in enumerate(zip(pre, states)):
        rows = np.arange(pos, pos + p.size * q.size).reshape(p.size, q.size)
        # ∂E/∂W_l[i, j] = −p_i q_j: derivative in q_j is −p_i, in p_i is −q_j
        for j in range(q.size):
            J[rows[:, j], off[l] + j] = -p
        if l > 0:
            for i in range(p.size):
                J[rows[i, :], off[l - 1] + i] = -q
        pos += p.size * q.size
    for l in range(spec.n_layers):
        for j in range(sizes[l]):
            J[pos + j, off[l] + j] = -1.0
        pos += sizes[l]
    return J


def linearise(net: HopfieldNetwork, x: np.ndarray) -> Linearisation:
    """Linearisation at the network's present equilibrium (states and θ as they are)."""
    free = net.free_mask()
    H = state_hessian(net, net.theta)[np.ix_(free, free)]
    J = mixed_jacobian(net, x, net.states)[:, free]
    n_out = net.spec.n_outputs
    is_out = np.zeros(free.size, bool)
    is_out[-n_out:] = True
    return Linearisation(free, H, J, net.spec.eps_vector(), is_out[free], n_out)


def loss_gradient(lin: Linearisation, outputs: np.ndarray, target: np.ndarray) -> np.ndarray:
    """∇L for L = ½‖s_L − y‖², by implicit differentiation (zero sensitivity on clipped units)."""
    dC = np.zeros(lin.H.shape[0])
    dC[lin.outputs_free] = (outputs - target)[lin.free[-lin.n_outputs :]]
    if dC.size == 0:
        return np.zeros(lin.J.shape[0])
    lam = np.linalg.solve(lin.H, dC)
    return -lin.J @ lam


def theta_velocity(lin: Linearisation, outputs: np.ndarray, target: np.ndarray) -> np.ndarray:
    """dθ/dβ of the joint equilibrium at fixed knobs: −(I + ΣF)⁻¹ Σ ∇L."""
    dC = np.zeros(lin.H.shape[0])
    dC[lin.outputs_free] = (outputs - target)[lin.free[-lin.n_outputs :]]
    if dC.size == 0:
        return np.zeros(lin.J.shape[0])
    G = lin.J.T @ (lin.eps[:, None] * lin.J)
    ds = np.linalg.solve(lin.H - G, dC)
    return lin.eps * (lin.J @ ds)


def stability_ratio(lin: Linearisation) -> float:
    """ρ = λ_max(H⁻¹ G): the joint equilibrium is a strict minimum iff ρ < 1."""
    if lin.H.shape[0] == 0:
        return 0.0
    G = lin.J.T @ (lin.eps[:, None] * lin.J)
    # H may be indefinite far from a minimum; the generalized eigenproblem is still meaningful
    vals = np.linalg.eigvals(np.linalg.solve(lin.H, G))
    return float(np.max(vals.real))


def gram_closed_form(net: HopfieldNetwork, x: np.ndarray) -> np.ndarray:
    """G = E_sθ Σ E_θs over all units, in closed form (cheap; no P × n matrix)."""
    spec = net.spec
    sizes = spec.layers[1:]
    off = np.concatenate([[0], np.cumsum(sizes)])
    n = off[-1]
    G = np.zeros((n, n))
    pre = [np.asarray(x, float)] + net.states[:-1]
    for l in range(spec.n_layers):
        ew, eb = spec.eps_weights[l], spec.eps_biases[l]
        p, q = pre[l], net.states[l]
        sl = slice(off[l], off[l + 1])
        G[sl, sl] += (ew * (p @ p) + eb) * np.eye(sizes[l])
        if l > 0:
            pl = slice(off[l - 1], off[l])
            G[pl, pl] += ew * (q @ q) * np.eye(sizes[l - 1])
            G[pl, sl] += ew * np.outer(p, q)
            G[sl, pl] += ew * np.outer(q, p)
    return G


def fast_stability_ratio(net: HopfieldNetwork, x: np.ndarray) -> float:
    """ρ at the present state, from the closed-form G (one small symmetric eigenproblem).

    Infinite when the state Hessian itself is not positive definite (the network is
    unstable even with its parameters held).
    """
    free = net.free_mask()
    if not free.any():
        return 0.0
    H = state_hessian(net, net.theta)[np.ix_(free, free)]
    G = gram_closed_form(net, x)[np.ix_(free, free)]
    try:
        C = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return float("inf")
    Ci = np.linalg.inv(C)
    return float(np.linalg.eigvalsh(Ci @ G @ Ci.T)[-1])

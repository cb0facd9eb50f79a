"""A nonlinear resistive network with diodes, for aeqlab's energy-defined twin.

Circuit: two input voltage sources x_0, x_1; three hidden nodes h_j, each wired to both
inputs through a conductance g_ij, to a bias rail at ``rail`` volts through a conductance
b_j, and to ground through a diode (anode at the node); one output node o wired to every
hidden node through a conductance w_j and to ground through g_o. The 13 conductances are
the floating parameters θ = (g_00, g_01, g_02, g_10, g_11, g_12, w_0, w_1, w_2, b_0, b_1, b_2, g_o);
the states are s = (h_0, h_1, h_2, o); the output is o (state 3).

The node voltages of a resistive circuit minimise its co-content (Millar's principle):
the sum over its branches of ∫₀^V I(v) dv. A conductance g across ΔV contributes g·ΔV²/2,
a diode I(V) = I_s(exp(V/V_T) − 1) contributes I_s·V_T(exp(V/V_T) − 1) − I_s·V. aeqlab adds
the knob couplings (u − θ)²/2ε and the nudging current into the output itself.

``python protocols/twins/diode_network.py OUT.npz`` writes the example data set: the output
of a *teacher* network (conductances drawn from seed 7) for 300 random inputs in [−1, 1]².
"""

from __future__ import annotations

import sys

import numpy as np

IS, VT = 0.05, 0.05  # diode saturation current (model units) and thermal voltage (V)


def _split(theta):
    return theta[:6].reshape(2, 3), theta[6:9], theta[9:12], theta[12]


def _diode(v):
    e = np.exp(np.minimum(v / VT, 60.0))
    return IS * VT * (e - 1.0) - IS * v, IS * (e - 1.0)  # co-content and current


def energy(s, theta, x, rail=1.0):
    """Co-content of the circuit at node voltages s = (h_0, h_1, h_2, o)."""
    g, w, b, go = _split(theta)
    h, o = s[:3], s[3]
    dx = x[:, None] - h[None, :]
    j, _ = _diode(h)
    return float(
        0.5 * np.sum(g * dx**2) + 0.5 * w @ (h - o) ** 2 + 0.5 * b @ (h - rail) ** 2 + 0.5 * go * o**2 + np.sum(j)
    )


def gradient(s, theta, x, rail=1.0):
    """(∂E/∂s, ∂E/∂θ): the currents out of each node, and half the squared branch voltages."""
    g, w, b, go = _split(theta)
    h, o = s[:3], s[3]
    dx = x[:, None] - h[None, :]
    _, i_d = _diode(h)
    ds = np.empty(4)
    ds[:3] = -np.sum(g * dx, axis=0) + w * (h - o) + b * (h - rail) + i_d
    ds[3] = -w @ (h - o) + go * o
    dtheta = np.concatenate([0.5 * (dx**2).ravel(), 0.5 * (h - o) ** 2, 0.5 * (h - rail) ** 2, [0.5 * o**2]])
    return ds, dtheta


def hessian(s, theta, x, rail=1.0):
    """∂²E over (s, θ), states first: the conductance matrix of the circuit and the branch voltages.

    E is linear in θ, so the θθ block is zero; ∂²E/∂s∂θ is each branch voltage where its
    conductance sits.
    """
    g, w, b, go = _split(theta)
    h, o = s[:3], s[3]
    dx = x[:, None] - h[None, :]
    v = h / VT
    slope = np.where(v < 60.0, IS / VT * np.exp(np.minimum(v, 60.0)), 0.0)  # the diode's conductance
    H = np.zeros((17, 17))
    hh = np.arange(3)
    H[hh, hh] = g.sum(axis=0) + w + b + slope
    H[hh, 3] = H[3, hh] = -w
    H[3, 3] = w.sum() + go
    for i in range(2):  # ∂²E/∂h_j∂g_ij = −(x_i − h_j)
        H[hh, 4 + 3 * i + hh] = H[4 + 3 * i + hh, hh] = -dx[i]
    H[hh, 10 + hh] = H[10 + hh, hh] = h - o  # w_j
    H[3, 10 + hh] = H[10 + hh, 3] = -(h - o)
    H[hh, 13 + hh] = H[13 + hh, hh] = h - rail  # b_j
    H[3, 16] = H[16, 3] = o  # g_o
    return H


def teacher_data(examples: int = 300, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): the teacher circuit's output voltage for random inputs (node voltages by Newton's method)."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.2, 2.0, 13)
    x = rng.uniform(-1.0, 1.0, (examples, 2))
    y = np.empty((examples, 1))
    s = np.zeros(4)
    for n, xi in enumerate(x):
        for _ in range(100):
            gs, _ = gradient(s, theta, xi)
            h = 1e-6
            H = np.array([(gradient(s + h * e, theta, xi)[0] - gradient(s - h * e, theta, xi)[0]) / (2 * h)
                          for e in np.eye(4)])
            step = np.linalg.solve(H, gs)
            s = s - step
            if np.max(np.abs(step)) < 1e-13:
                break
        y[n, 0] = s[3]
    return x, y


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python protocols/twins/diode_network.py OUT.npz", file=sys.stderr)
        raise SystemExit(2)
    xs, ys = teacher_data()
    np.savez(sys.argv[1], x=xs, y=ys)
    print(f"wrote {sys.argv[1]}: {len(xs)} examples, outputs in [{ys.min():.3f}, {ys.max():.3f}]")

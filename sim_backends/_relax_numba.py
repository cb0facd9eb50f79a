"""The joint relaxation of :mod:`sim_backends.hopfield`, compiled with numba.

Imported only by :func:`sim_backends.kernels.relax_kernel` (never at start-up). Works on
flat arrays: the states of all layers in one vector (layer l at ``so[l]:so[l+1]``), the
knobs u in the flat order of :func:`~sim_backends.hopfield.split_params` (W_{l+1} at
``wo[l]``, row-major, b_{l+1} at ``bo[l]``). The algorithm and its stopping rules are the
numpy path's, step for step; only the order of floating-point operations differs (the
states agree to rounding).

Written for the compiler: index arithmetic and array lengths in locals, inner loops over
contiguous rows (so they vectorise), and in a Newton polish the submatrices of the free
units gathered once, not at every step.

Over 400 lines: the kernels call each other and numba compiles and caches them per module,
so they stay together (lines: the sweep, the polish and their small solves).
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True)


@_jit
def _axpy(a, x, y):
    """y += a·x."""
    for j in range(y.shape[0]):
        y[j] += a * x[j]


@_jit
def _field(l, L, s, so, W, WT, ub, ew, eb, drive0, x_sq, currents, c):
    """Curvature a of layer l's reduced energy ½a·s² − c·s given its neighbours; c written into ``c``."""
    b = ub[l]
    for j in range(c.shape[0]):
        c[j] = b[j]
    if l == 0:
        prev_sq = x_sq
        for j in range(c.shape[0]):
            c[j] += drive0[j]
    else:
        prev = s[so[l - 1] : so[l]]
        prev_sq = 0.0
        Wl = W[l]
        for i in range(prev.shape[0]):
            p = prev[i]
            prev_sq += p * p
            if p != 0.0:
                _axpy(p, Wl[i], c)
    a = 1.0 - eb[l] - ew[l] * prev_sq
    if l + 1 < L:
        nxt = s[so[l + 1] : so[l + 2]]
        nxt_sq = 0.0
        Wt = WT[l + 1]
        for k in range(nxt.shape[0]):
            q = nxt[k]
            nxt_sq += q * q
            if q != 0.0:
                _axpy(q, Wt[k], c)
        a -= ew[l + 1] * nxt_sq
    else:
        for j in range(c.shape[0]):
            c[j] += currents[j]
    return a


@_jit
def _energy(L, s, so, W, ub, ew, eb, drive0, x_sq, currents, work):
    """Ẽ(s) = E(u, s) − ½Σ_g ε_g‖∂θ_g E(s)‖² − I·s_L."""
    e = 0.0
    prev_sq = x_sq
    for l in range(L):
        sl = s[so[l] : so[l + 1]]
        n = sl.shape[0]
        d = work[:n]
        b = ub[l]
        for j in range(n):
            d[j] = b[j]
        if l == 0:
            for j in range(n):
                d[j] += drive0[j]
        else:
            prev = s[so[l - 1] : so[l]]
            Wl = W[l]
            for i in range(prev.shape[0]):
                if prev[i] != 0.0:
                    _axpy(prev[i], Wl[i], d)
        sq = 0.0
        lin = 0.0
        for j in range(n):
            sq += sl[j] * sl[j]
            lin += d[j] * sl[j]
        e += 0.5 * sq - lin - 0.5 * (ew[l] * prev_sq * sq + eb[l] * sq)
        prev_sq = sq
    out = s[so[L - 1] : so[L]]
    for j in range(out.shape[0]):
        e -= currents[j] * out[j]
    return e


@_jit
def _lu_solve(D, B):
    """Solve D·X = B, X written into B (Gaussian elimination with partial pivoting; D overwritten).
    False when a pivot is exactly zero (a singular block, as LAPACK reports it)."""
    n = D.shape[0]
    m = B.shape[1]
    for k in range(n):
        p = k
        best = abs(D[k, k])
        for i in range(k + 1, n):
            if abs(D[i, k]) > best:
                best = abs(D[i, k])
                p = i
        if best == 0.0:
            return False
        if p != k:
            for j in range(n):
                t = D[k, j]
                D[k, j] = D[p, j]
                D[p, j] = t
            for j in range(m):
                t = B[k, j]
                B[k, j] = B[p, j]
                B[p, j] = t
        piv = D[k, k]
        for i in range(k + 1, n):
            f = D[i, k] / piv
            if f != 0.0:
                for j in range(k + 1, n):
                    D[i, j] -= f * D[k, j]
                for j in range(m):
                    B[i, j] -= f * B[k, j]
    for k in range(n - 1, -1, -1):
        piv = D[k, k]
        for j in range(m):
            acc = B[k, j]
            for i in range(k + 1, n):
                acc -= D[k, i] * B[i, j]
            B[k, j] = acc / piv
    return True


@_jit
def _polish(L, s, so, W, WT, ub, ew, eb, lo, hi, drive0, x_sq, currents, tol, trial, c):
    """Newton steps on the free units (the clipped ones held) by block elimination, from s.

    The Hessian of Ẽ on the free units is block tridiagonal: a_l·I on the diagonal and
    B_l = −W_{l+1}[F_l, F_{l+1}] − 2ε_{l+1} s_l[F_l] s_{l+1}[F_{l+1}]ᵀ off it; eliminating from
    the first layer (a scalar block) leaves dense systems of the later layers' free units.
    The proposal, clipped to the boxes, goes into ``trial``; False when nothing is free or a
    block is singular (no proposal).
    """
    # the free units of every layer, and the weights between them, gathered once
    F = [np.empty(0, np.int64) for _ in range(L)]
    total = 0
    for l in range(L):
        sl = s[so[l] : so[l + 1]]
        lo_l, hi_l = lo[l], hi[l]
        n = 0
        for j in range(sl.shape[0]):
            if sl[j] > lo_l and sl[j] < hi_l:
                n += 1
        f = np.empty(n, np.int64)
        n = 0
        for j in range(sl.shape[0]):
            if sl[j] > lo_l and sl[j] < hi_l:
                f[n] = j
                n += 1
        F[l] = f
        total += n
    if total == 0:
        return False
    Wf = [np.empty((0, 0)) for _ in range(L)]  # Wf[l]: W_{l+1}[F_l, F_{l+1}] (l < L-1)
    for l in range(L - 1):
        fa, fb = F[l], F[l + 1]
        Wn = W[l + 1]
        M = np.empty((fa.shape[0], fb.shape[0]))
        for i in range(fa.shape[0]):
            row = Wn[fa[i]]
            for k in range(fb.shape[0]):
                M[i, k] = row[fb[k]]
        Wf[l] = M
    for i in range(trial.shape[0]):
        trial[i] = s[i]
    curv = np.empty(L)
    rhs = [np.empty(0) for _ in range(L)]
    Bs = [np.empty((0, 0)) for _ in range(L)]
    Ys = [np.empty((0, 0)) for _ in range(L)]
    zs = [np.empty(0) for _ in range(L)]
    last_step = 0.0
    for _ in range(4):
        for l in range(L):
            tl = trial[so[l] : so[l + 1]]
            cl = c[: tl.shape[0]]
            a = _field(l, L, trial, so, W, WT, ub, ew, eb, drive0, x_sq, currents, cl)
            curv[l] = a
            f = F[l]
            r = np.empty(f.shape[0])
            for k in range(f.shape[0]):
                j = f[k]
                r[k] = cl[j] - a * tl[j]  # −∇Ẽ on the free units
            rhs[l] = r
        for l in range(L - 1):
            fa, fb = F[l], F[l + 1]
            ta, tb = trial[so[l] : so[l + 1]], trial[so[l + 1] : so[l + 2]]
            e2 = 2.0 * ew[l + 1]
            M = Wf[l]
            B = np.empty((fa.shape[0], fb.shape[0]))
            for i in range(fa.shape[0]):
                g = e2 * ta[fa[i]]
                for k in range(fb.shape[0]):
                    B[i, k] = -M[i, k] - g * tb[fb[k]]
            Bs[l] = B
        # elimination: D_0 = a_0·I, D_{l+1} = a_{l+1}·I − B_lᵀ D_l⁻¹ B_l, r'_{l+1} = r_{l+1} − B_lᵀ D_l⁻¹ r'_l
        r = rhs[0]
        D = np.empty((0, 0))
        for l in range(L):
            nl = F[l].shape[0]
            if l > 0:
                B = Bs[l - 1]
                Y = Ys[l - 1]
                z = zs[l - 1]
                D = np.zeros((nl, nl))
                r = rhs[l].copy()
                for k in range(B.shape[0]):
                    zk = z[k]
                    for i in range(nl):
                        bki = B[k, i]
                        r[i] -= bki * zk
                        for j in range(nl):
                            D[i, j] -= bki * Y[k, j]
                for i in range(nl):
                    D[i, i] += curv[l]
            if l + 1 < L:
                B = Bs[l]
                if l == 0:
                    if curv[0] == 0.0 and nl > 0:
                        return False
                    a0 = curv[0] if curv[0] != 0.0 else 1.0
                    Ys[0] = B / a0
                    zs[0] = r / a0
                else:
                    Y = B.copy()
                    z = r.copy().reshape((nl, 1))
                    if nl > 0:
                        if not _lu_solve(D.copy(), Y) or not _lu_solve(D.copy(), z):
                            return False
                    Ys[l] = Y
                    zs[l] = z.reshape(nl)
        nl = F[L - 1].shape[0]
        if L == 1:
            if curv[0] == 0.0 and nl > 0:
                return False
            last = r / (curv[0] if curv[0] != 0.0 else 1.0)
        else:
            z = r.copy().reshape((nl, 1))
            if nl > 0 and not _lu_solve(D, z):
                return False
            last = z.reshape(nl)
        # back substitution, applying the step as it goes
        step = 0.0
        delta = last
        for l in range(L - 1, -1, -1):
            if l < L - 1:
                Y, z = Ys[l], zs[l]
                nxt = delta
                delta = z.copy()
                for i in range(delta.shape[0]):
                    acc = 0.0
                    for k in range(nxt.shape[0]):
                        acc += Y[i, k] * nxt[k]
                    delta[i] -= acc
            f = F[l]
            tl = trial[so[l] : so[l + 1]]
            for k in range(f.shape[0]):
                tl[f[k]] += delta[k]
                if abs(delta[k]) > step:
                    step = abs(delta[k])
        # Newton converges quadratically, step_{k+1} ≈ C·step_k²: stop when the next step would be
        # negligible (C from the last two steps, at most 1)
        rate = min(1.0, step / last_step**2) if last_step > 0.0 else 1.0
        if step <= 0.01 * tol or rate * step * step <= 0.01 * tol:
            break
        last_step = step
    for l in range(L):
        tl = trial[so[l] : so[l + 1]]
        lo_l, hi_l = lo[l], hi[l]
        for j in range(tl.shape[0]):
            tl[j] = min(max(tl[j], lo_l), hi_l)
    return True


@_jit
def _polish2(s, n_h, W2, ub, ew, eb, lo, hi, drive0, x_sq, currents, tol, trial):
    """:func:`_polish` for one hidden layer, without lists: h = s[:n_h] (scalar curvature a_h), o the outputs.

    Eliminating the free hidden units leaves D = a_o·I − BᵀB/a_h on the free outputs, with
    B = −W2[F_h, F_o] − 2ε₂ h[F_h] o[F_o]ᵀ; the hidden step follows as (r_h − B·δo)/a_h.
    """
    n_o = s.shape[0] - n_h
    h = s[:n_h]
    o = s[n_h:]
    fh = np.empty(n_h, np.int64)
    nh = 0
    for j in range(n_h):
        if h[j] > lo[0] and h[j] < hi[0]:
            fh[nh] = j
            nh += 1
    fo = np.empty(n_o, np.int64)
    no = 0
    for j in range(n_o):
        if o[j] > lo[1] and o[j] < hi[1]:
            fo[no] = j
            no += 1
    if nh + no == 0:
        return False
    Wf = np.empty((nh, no))
    for i in range(nh):
        r = fh[i]
        for k in range(no):
            Wf[i, k] = W2[r, fo[k]]
    for i in range(s.shape[0]):
        trial[i] = s[i]
    th = trial[:n_h]
    to = trial[n_h:]
    b1, b2 = ub[0], ub[1]
    e1w, e2w, e1b, e2b = ew[0], ew[1], eb[0], eb[1]
    c_o = np.empty(n_o)
    r_h = np.empty(nh)
    r_o = np.empty(no)
    B = np.empty((nh, no))
    D = np.empty((no, no))
    z = np.empty((no, 1))
    d_h = np.empty(nh)
    last_step = 0.0
    for _ in range(4):
        h_sq = 0.0
        for j in range(n_h):
            h_sq += th[j] * th[j]
        o_sq = 0.0
        for j in range(n_o):
            o_sq += to[j] * to[j]
        a_h = 1.0 - e1b - e1w * x_sq - e2w * o_sq
        a_o = 1.0 - e2b - e2w * h_sq
        # −∇Ẽ on the free units: the hidden ones row by row, the outputs from hᵀW2
        for i in range(nh):
            r = fh[i]
            acc = b1[r] + drive0[r]
            for k in range(n_o):
                acc += W2[r, k] * to[k]
            r_h[i] = acc - a_h * th[r]
        for k in range(n_o):
            c_o[k] = b2[k] + currents[k]
        for j in range(n_h):
            hj = th[j]
            if hj != 0.0:
                for k in range(n_o):
                    c_o[k] += hj * W2[j, k]
        for k in range(no):
            r_o[k] = c_o[fo[k]] - a_o * to[fo[k]]
        if nh > 0 and a_h == 0.0:
            return False
        inv = 1.0 / a_h if a_h != 0.0 else 1.0
        e2 = 2.0 * e2w
        for i in range(nh):
            g = e2 * th[fh[i]]
            for k in range(no):
                B[i, k] = -Wf[i, k] - g * to[fo[k]]
        # D = a_o·I − BᵀB/a_h, r' = r_o − Bᵀr_h/a_h
        for k in range(no):
            for m in range(no):
                D[k, m] = 0.0
            z[k, 0] = r_o[k]
        for i in range(nh):
            yi = r_h[i] * inv
            for k in range(no):
                bik = B[i, k]
                z[k, 0] -= bik * yi
                bi = bik * inv
                for m in range(no):
                    D[k, m] -= bi * B[i, m]
        for k in range(no):
            D[k, k] += a_o
        if no > 0 and not _lu_solve(D, z):
            return False
        step = 0.0
        for k in range(no):
            dv = z[k, 0]
            to[fo[k]] += dv
            if abs(dv) > step:
                step = abs(dv)
        for i in range(nh):
            acc = r_h[i]
            for k in range(no):
                acc -= B[i, k] * z[k, 0]
            d_h[i] = acc * inv
        for i in range(nh):
            th[fh[i]] += d_h[i]
            if abs(d_h[i]) > step:
                step = abs(d_h[i])
        rate = min(1.0, step / last_step**2) if last_step > 0.0 else 1.0
        if step <= 0.01 * tol or rate * step * step <= 0.01 * tol:
            break
        last_step = step
    for j in range(n_h):
        th[j] = min(max(th[j], lo[0]), hi[0])
    for j in range(n_o):
        to[j] = min(max(to[j], lo[1]), hi[1])
    return True


@_jit
def relax(x, u, currents, s0, sizes, wo, bo, ew, eb, lo, hi, tol, cap, theta, moved):
    """Joint relaxation from the states s0 (left untouched) at inputs x, knobs u and currents I.

    Returns (states, sweeps, converged, last sweep's largest change) and writes the floating
    parameters θ = u − ε∂θE(s) at the states reached into ``theta``, and each layer's largest
    move from s0 into ``moved``.
    """
    L = sizes.shape[0] - 1
    so = np.zeros(L + 1, np.int64)
    nmax = 0
    for l in range(L):
        so[l + 1] = so[l] + sizes[l + 1]
        nmax = max(nmax, sizes[l + 1])
    # views of the knobs: W[l] = W_{l+1} (rows: layer l's inputs), WT[l] its transpose (l ≥ 1), ub[l] = b_{l+1}
    W = [u[wo[l] : wo[l] + sizes[l] * sizes[l + 1]].reshape((sizes[l], sizes[l + 1])) for l in range(L)]
    WT = [np.empty((0, 0)) for _ in range(L)]
    for l in range(1, L):
        WT[l] = np.ascontiguousarray(W[l].T)
    ub = [u[bo[l] : bo[l] + sizes[l + 1]] for l in range(L)]
    s = s0.copy()
    trial = np.empty_like(s)
    c = np.empty(nmax)
    drive0 = np.zeros(sizes[1])
    x_sq = 0.0
    W0 = W[0]
    for i in range(sizes[0]):
        xi = x[i]
        x_sq += xi * xi
        if xi != 0.0:
            _axpy(xi, W0[i], drive0)
    order = np.empty(L, np.int64)
    k = 0
    for l in range(0, L, 2):
        order[k] = l
        k += 1
    for l in range(1, L, 2):
        order[k] = l
        k += 1
    active = np.zeros(so[L], np.bool_)
    have_active = False
    converged = False
    change = np.inf
    sweeps = 0
    for sweep in range(1, cap + 1):
        sweeps = sweep
        change = 0.0
        for l in order:
            sl = s[so[l] : so[l + 1]]
            n = sl.shape[0]
            cl = c[:n]
            a = _field(l, L, s, so, W, WT, ub, ew, eb, drive0, x_sq, currents, cl)
            lo_l, hi_l = lo[l], hi[l]
            if a > 0.0:
                for j in range(n):
                    v = min(max(cl[j] / a, lo_l), hi_l)
                    d = abs(v - sl[j])
                    if d > change:
                        change = d
                    sl[j] = v
            else:  # concave or flat: the minimum sits at a corner
                for j in range(n):
                    e_lo = 0.5 * a * lo_l * lo_l - cl[j] * lo_l
                    e_hi = 0.5 * a * hi_l * hi_l - cl[j] * hi_l
                    v = lo_l if e_lo <= e_hi else hi_l
                    d = abs(v - sl[j])
                    if d > change:
                        change = d
                    sl[j] = v
        if change <= tol:
            converged = True
            break
        # polish when the active set changed (and every 4th sweep)
        same = have_active
        for l in range(L):
            lo_l, hi_l = lo[l], hi[l]
            for j in range(so[l], so[l + 1]):
                clipped = s[j] <= lo_l or s[j] >= hi_l
                if clipped != active[j]:
                    same = False
                    active[j] = clipped
        if not same or sweep % 4 == 0:
            have_active = True
            if L == 2:
                proposed = _polish2(s, sizes[1], W[1], ub, ew, eb, lo, hi, drive0, x_sq, currents, tol, trial)
            else:
                proposed = _polish(L, s, so, W, WT, ub, ew, eb, lo, hi, drive0, x_sq, currents, tol, trial, c)
            if proposed:
                e_old = _energy(L, s, so, W, ub, ew, eb, drive0, x_sq, currents, c)
                e_new = _energy(L, trial, so, W, ub, ew, eb, drive0, x_sq, currents, c)
                if e_new <= e_old + 1e-15 * abs(e_old):
                    t = s
                    s = trial
                    trial = t
    # θ = u − ε ∂θE(s), with ∂W_l E = −s_{l-1} s_lᵀ and ∂b_l E = −s_l
    for l in range(L):
        sl = s[so[l] : so[l + 1]]
        n = sl.shape[0]
        rows = sizes[l]
        off = wo[l]
        e = ew[l]
        for i in range(rows):
            g = e * (x[i] if l == 0 else s[so[l - 1] + i])
            base = off + i * n
            ur = u[base : base + n]
            tr = theta[base : base + n]
            for j in range(n):
                tr[j] = ur[j] + g * sl[j]
        bb = bo[l]
        e = eb[l]
        br = u[bb : bb + n]
        tr = theta[bb : bb + n]
        for j in range(n):
            tr[j] = br[j] + e * sl[j]
    for l in range(L):
        m = 0.0
        for j in range(so[l], so[l + 1]):
            d = abs(s[j] - s0[j])
            if d > m:
                m = d
        moved[l] = m
    return s, sweeps, converged, change

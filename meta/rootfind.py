"""Vectorised Brent root finding, step for step as R's ``uniroot``.

metafor finds the Paule-Mandel tau^2 and the Q-profile limits with ``uniroot(tol =
.Machine$double.eps^0.25)``. Brent's method stops on the width of its bracket, so the root it
returns depends on the exact sequence of steps. Porting R's ``R_zeroin2`` (src/library/stats/
src/zeroin.c; Brent 1973, *Algorithms for Minimization without Derivatives*, ch. 4) step for step
makes our roots equal to metafor's to rounding, for a whole batch of problems at once.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

R_UNIROOT_TOL = np.finfo(float).eps ** 0.25
_EPS = np.finfo(float).eps


def brent_roots(
    func: Callable[[np.ndarray, np.ndarray], np.ndarray],
    lower: np.ndarray,
    upper: np.ndarray,
    f_lower: np.ndarray,
    f_upper: np.ndarray,
    tol: float = R_UNIROOT_TOL,
    maxiter: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Find one root per row of ``func`` in ``[lower, upper]``.

    ``func(x, rows)`` evaluates the functions of the batch rows ``rows`` at ``x``. The caller has
    checked that ``f_lower`` and ``f_upper`` have opposite signs (or one is zero). Returns the roots
    and a boolean array telling which rows converged within ``maxiter`` iterations.
    """
    a = np.asarray(lower, dtype=float).copy()
    b = np.asarray(upper, dtype=float).copy()
    fa = np.asarray(f_lower, dtype=float).copy()
    fb = np.asarray(f_upper, dtype=float).copy()
    n = a.shape[0]
    result = np.full(n, np.nan)
    converged = np.zeros(n, dtype=bool)

    at_lower = fa == 0.0
    at_upper = (fb == 0.0) & ~at_lower
    result[at_lower] = a[at_lower]
    result[at_upper] = b[at_upper]
    converged[at_lower | at_upper] = True

    c = a.copy()
    fc = fa.copy()
    active = ~converged
    for _ in range(maxiter + 1):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        ar, br, cr = a[rows], b[rows], c[rows]
        far, fbr, fcr = fa[rows], fb[rows], fc[rows]
        prev_step = br - ar

        swap = np.abs(fcr) < np.abs(fbr)
        ar = np.where(swap, br, ar)
        br = np.where(swap, cr, br)
        cr = np.where(swap, ar, cr)
        far = np.where(swap, fbr, far)
        fbr = np.where(swap, fcr, fbr)
        fcr = np.where(swap, far, fcr)

        tol_act = 2.0 * _EPS * np.abs(br) + tol / 2.0
        new_step = (cr - br) / 2.0

        done = (np.abs(new_step) <= tol_act) | (fbr == 0.0)
        result[rows[done]] = br[done]
        converged[rows[done]] = True

        step = _interpolated_step(ar, br, cr, far, fbr, fcr, prev_step, tol_act, new_step)
        step = np.where(np.abs(step) < tol_act, np.where(step > 0, tol_act, -tol_act), step)

        go = ~done
        idx = rows[go]
        a_new = br[go]
        fa_new = fbr[go]
        b_new = br[go] + step[go]
        fb_new = func(b_new, idx)
        same_sign = ((fb_new > 0) & (fcr[go] > 0)) | ((fb_new < 0) & (fcr[go] < 0))
        c[idx] = np.where(same_sign, a_new, cr[go])
        fc[idx] = np.where(same_sign, fa_new, fcr[go])
        a[idx], fa[idx] = a_new, fa_new
        b[idx], fb[idx] = b_new, fb_new
        active[rows[done]] = False

    unfinished = active
    result[unfinished] = b[unfinished]
    return result, converged


def _interpolated_step(a, b, c, fa, fb, fc, prev_step, tol_act, bisect_step):
    """Secant or inverse-quadratic step where Brent allows it, else the bisection step."""
    with np.errstate(divide="ignore", invalid="ignore"):
        try_interp = (np.abs(prev_step) >= tol_act) & (np.abs(fa) > np.abs(fb))
        cb = c - b
        two_points = a == c
        t1_lin = fb / fa
        p_lin = cb * t1_lin
        q_lin = 1.0 - t1_lin
        q0 = fa / fc
        t1 = fb / fc
        t2 = fb / fa
        p_quad = t2 * (cb * q0 * (q0 - t1) - (b - a) * (t1 - 1.0))
        q_quad = (q0 - 1.0) * (t1 - 1.0) * (t2 - 1.0)
        p = np.where(two_points, p_lin, p_quad)
        q = np.where(two_points, q_lin, q_quad)
        q = np.where(p > 0, -q, q)
        p = np.abs(p)
        accept = (
            try_interp
            & (p < (0.75 * cb * q - np.abs(tol_act * q) / 2.0))
            & (p < np.abs(prev_step * q / 2.0))
        )
        return np.where(accept, p / q, bisect_step)

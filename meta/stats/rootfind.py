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

    The rows evaluated form a working set that is narrowed only when half of it has finished (the
    finished rows are evaluated at their root meanwhile), so ``rows`` is the same array object
    between narrowings and a caller may gather its data once per narrowing.
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

    work = np.flatnonzero(~converged)
    a, b, fa, fb = a[work], b[work], fa[work], fb[work]
    c, fc = a.copy(), fa.copy()
    alive = np.ones(work.size, dtype=bool)
    for _ in range(maxiter + 1):
        if 2 * alive.sum() <= alive.size:
            work, a, b, c, fa, fb, fc = (x[alive] for x in (work, a, b, c, fa, fb, fc))
            alive = alive[alive]
            if work.size == 0:
                break
        prev_step = b - a

        swap = np.abs(fc) < np.abs(fb)
        a = np.where(swap, b, a)
        b = np.where(swap, c, b)
        c = np.where(swap, a, c)
        fa = np.where(swap, fb, fa)
        fb = np.where(swap, fc, fb)
        fc = np.where(swap, fa, fc)

        tol_act = 2.0 * _EPS * np.abs(b) + tol / 2.0
        new_step = (c - b) / 2.0

        done = alive & ((np.abs(new_step) <= tol_act) | (fb == 0.0))
        result[work[done]] = b[done]
        converged[work[done]] = True
        alive &= ~done

        step = _interpolated_step(a, b, c, fa, fb, fc, prev_step, tol_act, new_step)
        step = np.where(np.abs(step) < tol_act, np.where(step > 0, tol_act, -tol_act), step)
        step[~alive] = 0.0

        b_new = b + step
        fb_new = func(b_new, work)
        same_sign = ((fb_new > 0) & (fc > 0)) | ((fb_new < 0) & (fc < 0))
        c = np.where(same_sign, b, c)
        fc = np.where(same_sign, fb, fc)
        a, fa = b, fb
        b, fb = b_new, fb_new

    result[work[alive]] = b[alive]
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

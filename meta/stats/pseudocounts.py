"""Pseudo-counts and the within-study covariance of a study's log relative risks.

A study reports log RRs y_j (j = 1..k, non-referent categories) with variances v_j against one
referent category, plus crude cases A_j and totals N_j (persons, or person-time for incidence
rates). The log RRs share the referent, so they are correlated; the "effective" (pseudo) counts
reproduce the adjusted log RRs and their variances, and give the covariances
(Greenland & Longnecker 1992, Am J Epidemiol 135:1301; Orsini et al. 2012, Am J Epidemiol 175:66).

Types: ``cc`` case-control (N = cases + controls), ``ir`` incidence rate (N = person-time),
``ci`` cumulative incidence (N = persons). Every function takes one study with the referent
row included, ``ref`` being the boolean mask of that row, as R's dosresmeta does
(``grl``, ``hamling``, ``covar.logrr`` in ``R/covariance.R`` of GitHub ``alecri/dosresmeta``).

Hamling's method (Hamling et al. 2008, Stat Med 27:954) keeps two margins of the crude table: the
fraction of non-cases (cc) or of subjects/person-time (ir, ci) in the referent category ``p0``, and
the ratio non-cases : cases (cc) or subjects : cases ``z0``. dosresmeta has had two versions:

- ``hamling`` (GitHub commit 725cc35, DESCRIPTION 2.1.0 of 2019-03-05, and the 2.1.1 help page
  ``docs/reference/hamling.html``, whose printed counts it reproduces): z0 and its fitted
  counterpart are ratios summed over *all* categories, referent included;
- ``hamling-2017`` (the other stored version of ``R/covariance.R``, commit 337fc63): both ratios
  are summed over the *non-referent* categories only. This is the variant of CRAN's dosresmeta
  2.0.1: with it the engine reproduces the curves Garcia et al. 2023 computed with that release to
  1e-14 (tests/test_doseresponse_garcia.py), with ``hamling`` only to ~1e-7.

dosresmeta finds the two referent pseudo-counts with Nelder-Mead (``optim``) minimising the squared
relative errors of the two margins. The system has an exact solution (two equations, two unknowns)
that Nelder-Mead approaches only to about 5 significant digits, so :func:`r_nelder_mead` repeats R's
algorithm step for step: the counts are R's, not the exact solution.
"""

from __future__ import annotations

import math

import numpy as np

from meta.errors import MetaError

TYPES = ("cc", "ir", "ci")
COVARIANCES = ("gl", "hamling", "hamling-2017", "independent")
GL_TOL = 1e-5  # dosresmeta grl(tol = 1e-05): stop when the squared step is below it
R_RELTOL = np.sqrt(np.finfo(float).eps)  # optim's default reltol


class PseudoCountError(MetaError):
    """No valid pseudo-counts (negative counts, no convergence, covariance not positive definite)."""


def greenland_longnecker(y, v, cases, n, type_, ref, tol=GL_TOL, maxiter=500):
    """Pseudo-cases A (all categories) by Greenland & Longnecker's Newton iteration.

    Follows dosresmeta's ``grl``: the margins (total cases, and N of each category) are kept; the
    referent cases are the total minus the others; the iteration starts from the crude cases and
    stops when the squared change of the non-referent cases is below ``tol``. Returns (A, N).
    """
    y, v, cases, n = (np.asarray(a, dtype=float) for a in (y, v, cases, n))
    nr = ~ref
    ax = cases.copy()
    total = cases.sum()
    for _ in range(maxiter):
        a0 = total - ax[nr].sum()
        # as grl: cx from the current vector, whose referent entry is the previous step's A0
        if type_ == "ir":
            cx = 1.0 / ax
            e = y[nr] + np.log(a0) + np.log(n[nr]) - np.log(ax[nr]) - np.log(n[ref])
        else:
            cx = 1.0 / ax + 1.0 / (n - ax)
            e = y[nr] + np.log(a0) + np.log(n[nr] - ax[nr]) - np.log(ax[nr]) - np.log(n[ref] - a0)
        h = np.full((nr.sum(), nr.sum()), cx[ref][0]) + np.diag(cx[nr])
        step = np.linalg.solve(h, e)
        new = ax.copy()
        new[ref] = a0
        new[nr] = ax[nr] + step
        if not np.all(np.isfinite(new)):
            raise PseudoCountError("Greenland-Longnecker iteration diverged")
        if np.sum(step**2) < tol:
            return new, n.copy()
        ax = new
    raise PseudoCountError(f"Greenland-Longnecker iteration did not converge in {maxiter} steps")


def _hamling_counts(a0, n0, ey, v, type_, ref):
    """Pseudo-counts (A, N) of every category implied by referent counts (a0, n0) (dosresmeta
    ``est.ps.h``); ``ey`` = exp(log RR), ``v`` the variances, ``ref`` the referent's index. Plain
    Python floats: a study has a handful of categories, and the Nelder-Mead calls this thousands of
    times (numpy's per-call overhead would dominate; the arithmetic is the same IEEE operations)."""
    a, nn = [], []
    for i, (e, var) in enumerate(zip(ey, v)):
        if i == ref:
            a.append(a0)
            nn.append(n0)
        elif type_ == "cc":
            b0 = n0 - a0
            d = var - 1.0 / a0 - 1.0 / b0
            ai = (1.0 + e * a0 / b0) / d
            a.append(ai)
            nn.append(ai + (1.0 + b0 / (a0 * e)) / d)
        elif type_ == "ir":
            d = var - 1.0 / a0 + 1.0 / n0
            a.append((1.0 - e * a0 / n0) / d)
            nn.append((n0 / (a0 * e) - 1.0) / d)
        else:
            d = var - 1.0 / a0
            a.append(1.0 / d)
            nn.append((n0 / (a0 * e)) / d)
    return a, nn


def _hamling_margins(a, nn, type_, ref, referent_in_ratio):
    """(p, z): referent share of non-cases (cc) or of N, and the ratio non-cases (or N) : cases."""
    keep = [i for i in range(len(a)) if referent_in_ratio or i != ref]
    other = [x - y for x, y in zip(nn, a)] if type_ == "cc" else nn
    return other[ref] / _sum(other), _sum(other[i] for i in keep) / _sum(a[i] for i in keep)


def _sum(values) -> float:
    """Left-to-right sum, as numpy sums a handful of numbers."""
    total = 0.0
    for x in values:
        total += x
    return total


def hamling(y, v, cases, n, type_, ref, variant="hamling"):
    """Pseudo-counts (A, N) by Hamling's method; ``variant`` is ``hamling`` or ``hamling-2017``.

    As dosresmeta: the referent counts (A0, N0) minimise the sum of the squared relative errors of
    the two margins, by R's Nelder-Mead (``optim`` defaults) from the crude referent counts.
    """
    y, v, cases, n = (np.asarray(a, dtype=float) for a in (y, v, cases, n))
    whole = variant == "hamling"
    r = int(np.flatnonzero(ref)[0])
    ey, var = [math.exp(x) for x in y.tolist()], v.tolist()
    p0, z0 = _hamling_margins(cases.tolist(), n.tolist(), type_, r, whole)

    def loss(par):
        a, nn = _hamling_counts(float(par[0]), float(par[1]), ey, var, type_, r)
        p1, z1 = _hamling_margins(a, nn, type_, r, whole)
        return ((p1 - p0) / p0) ** 2 + ((z1 - z0) / z0) ** 2

    par, converged = r_nelder_mead(loss, np.array([cases[r], n[r]]))
    if not converged:
        raise PseudoCountError("Hamling's margins: Nelder-Mead did not converge")
    a, nn = _hamling_counts(float(par[0]), float(par[1]), ey, var, type_, r)
    return np.array(a), np.array(nn)


def r_nelder_mead(fn, start, reltol=R_RELTOL, maxit=500,
                  alpha=1.0, beta=0.5, gamma=2.0):
    """Minimise ``fn`` step for step as R's ``optim(method = "Nelder-Mead")`` (``nmmin`` in R's
    src/appl/optim.c; Nelder & Mead 1965), so the point returned is R's to rounding.
    Returns (x, converged). Plain Python floats: the simplex of a study has two or three points."""
    big = 1.0e35
    start = [float(x) for x in start]
    nvar = len(start)

    def f_of(x):
        val = fn(x)
        return val if math.isfinite(val) else big

    simplex = [list(start) for _ in range(nvar + 1)]
    values = [0.0] * (nvar + 1)
    values[0] = f_of(simplex[0])
    count = 1
    convtol = reltol * (abs(values[0]) + reltol)
    step = max(0.1 * max(abs(x) for x in start), 0.0) or 0.1
    size = 0.0
    for j in range(1, nvar + 1):
        trystep = step
        while simplex[j][j - 1] == start[j - 1]:
            simplex[j][j - 1] = start[j - 1] + trystep
            trystep *= 10
        size += trystep
    oldsize = size
    low = 0
    calcvert = True
    while True:
        if calcvert:
            for j in range(nvar + 1):
                if j != low:
                    values[j] = f_of(simplex[j])
                    count += 1
            calcvert = False
        vl = vh = values[low]
        high = low
        for j in range(nvar + 1):
            if j != low:
                if values[j] < vl:
                    low, vl = j, values[j]
                if values[j] > vh:
                    high, vh = j, values[j]
        if vh <= vl + convtol:
            return np.array(simplex[low]), True
        centroid = [(_sum(point[i] for point in simplex) - simplex[high][i]) / nvar for i in range(nvar)]
        trial = [(1.0 + alpha) * c - alpha * h for c, h in zip(centroid, simplex[high])]
        vr = f_of(trial)
        count += 1
        if vr < vl:
            expanded = [gamma * t + (1.0 - gamma) * c for t, c in zip(trial, centroid)]
            fe = f_of(expanded)
            count += 1
            if fe < vr:
                simplex[high], values[high] = expanded, fe
            else:
                simplex[high], values[high] = trial, vr
        else:
            if vr < vh:
                simplex[high], values[high] = trial, vr
            contracted = [(1.0 - beta) * h + beta * c for h, c in zip(simplex[high], centroid)]
            fc = f_of(contracted)
            count += 1
            if fc < values[high]:
                simplex[high], values[high] = contracted, fc
            elif vr >= vh:
                calcvert = True
                size = 0.0
                for j in range(nvar + 1):
                    if j != low:
                        simplex[j] = [beta * (x - lo) + lo for x, lo in zip(simplex[j], simplex[low])]
                        size += _sum(abs(x - lo) for x, lo in zip(simplex[j], simplex[low]))
                if size >= oldsize:
                    return np.array(simplex[low]), False
                oldsize = size
        if count > maxit:
            return np.array(simplex[low]), False


def pseudo_counts(y, v, cases, n, type_, ref, method):
    """Pseudo-counts (A, N) of one study by ``gl``, ``hamling`` or ``hamling-2017``."""
    if method == "gl":
        a, nn = greenland_longnecker(y, v, cases, n, type_, ref)
    else:
        a, nn = hamling(y, v, cases, n, type_, ref, variant=method)
    bad = ~np.isfinite(a) | ~np.isfinite(nn) | (a <= 0) | (nn <= 0)
    if type_ != "ir":
        bad |= nn - a <= 0
    if bad.any():
        raise PseudoCountError("pseudo-counts are not all positive")
    return a, nn


def covariance_from_counts(v, a, nn, type_, ref):
    """Covariance of the non-referent log RRs: reported variances on the diagonal, correlations
    from the pseudo-counts (dosresmeta ``covar.logrr``; Orsini et al. 2012, eq. A1-A3)."""
    v = np.asarray(v, dtype=float)
    if type_ == "cc":
        s = 1.0 / a + 1.0 / (nn - a)
    elif type_ == "ir":
        s = 1.0 / a
    else:
        s = 1.0 / a - 1.0 / nn
    s0 = s[ref][0]
    si = s0 + s[~ref]
    corr = s0 / np.sqrt(np.outer(si, si))
    np.fill_diagonal(corr, 1.0)
    sd = np.sqrt(v[~ref])
    return np.outer(sd, sd) * corr


def study_covariance(y, v, cases, n, type_, ref, method):
    """(S, A, N) for one study: covariance of its non-referent log RRs and the pseudo-counts used
    (None for ``independent``, where S is diagonal). Raises PseudoCountError when S is not
    positive definite."""
    v = np.asarray(v, dtype=float)
    if method == "independent":
        return np.diag(v[~ref]), None, None
    a, nn = pseudo_counts(y, v, cases, n, type_, ref, method)
    s = covariance_from_counts(v, a, nn, type_, ref)
    if not np.all(np.isfinite(s)) or np.linalg.eigvalsh(s)[0] <= 0:
        raise PseudoCountError("covariance matrix is not positive definite")
    return s, a, nn

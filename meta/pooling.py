"""Fixed- and random-effects pooling of many analyses at once, as metafor's ``rma.uni``.

The engine works on a *batch*: the effects of many analyses laid end to end, with the number of
studies of each. Analyses with the same k are stacked into a dense (n, k) array, so every
estimator is a handful of array operations whatever the number of analyses; a single analysis is a
batch of one.

Estimators of tau^2 (intercept-only model; Viechtbauer 2005, J Educ Behav Stat 30:261; metafor's
``rma.uni`` documentation for each):

- DL   DerSimonian & Laird 1986, Control Clin Trials 7:177 (method of moments, FE weights)
- HE   Hedges 1983 / Hedges & Olkin 1985 (method of moments, unweighted)
- HS   Hunter & Schmidt 2004 (Q - k over the sum of FE weights)
- SJ   Sidik & Jonkman 2005, J Biopharm Stat 15:823 (one step from the HE-type start)
- PM   Paule & Mandel 1982 (generalised Q = k - 1; root found as R's ``uniroot``)
- EB   Morris 1983 (Fisher-type iterations towards the same root as PM)
- ML, REML  Fisher scoring from the HE value, stopped when tau^2 changes by less than 1e-5,
       with step halving and metafor's check against a local maximum.

Confidence interval of the mean by z or Knapp & Hartung 2003 (Stat Med 22:2693; t on k - 1 df,
variance scaled by the weighted residual sum of squares), prediction interval
(Riley et al. 2011, BMJ 342:d549; metafor's default: the same critical value as the CI),
Cochran's Q, I^2 and H^2 as metafor defines them for the estimator used (Higgins & Thompson 2002),
and the Q-profile interval for tau^2 (Viechtbauer 2007, Stat Med 26:37).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .options import PoolOptions
from .rootfind import R_UNIROOT_TOL, brent_roots

_EPS = np.finfo(float).eps


@dataclass(frozen=True)
class BatchFit:
    """Arrays of results, one entry per analysis, in the order of the batch."""

    k: np.ndarray
    estimate: np.ndarray
    se: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray
    zval: np.ndarray
    p: np.ndarray
    pi_lower: np.ndarray
    pi_upper: np.ndarray
    tau2: np.ndarray
    tau2_se: np.ndarray
    tau2_ci_lower: np.ndarray
    tau2_ci_upper: np.ndarray
    i2: np.ndarray
    i2_ci_lower: np.ndarray
    i2_ci_upper: np.ndarray
    h2: np.ndarray
    h2_ci_lower: np.ndarray
    h2_ci_upper: np.ndarray
    q: np.ndarray
    q_df: np.ndarray
    q_p: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    weights: list  # per analysis: percent weights of its studies (random-effects weights)


FIELDS = [name for name in BatchFit.__dataclass_fields__ if name != "weights"]


def pool_batch(yi: np.ndarray, vi: np.ndarray, sizes: np.ndarray, options: PoolOptions) -> BatchFit:
    """Pool every analysis of a batch.

    ``yi`` and ``vi`` hold the studies of all analyses end to end; ``sizes[j]`` is the number of
    studies of analysis j (>= 1). Every ``vi`` must be positive (the sheet checks see to that).
    """
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    sizes = np.asarray(sizes, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n = sizes.size
    out = {name: np.full(n, np.nan) for name in FIELDS}
    out["k"] = sizes.copy()
    out["iterations"] = np.zeros(n, dtype=np.int64)
    out["converged"] = np.ones(n, dtype=bool)
    weights: list = [None] * n
    for k in np.unique(sizes):
        rows = np.flatnonzero(sizes == k)
        index = starts[rows][:, None] + np.arange(k)[None, :]
        part = _fit_dense(yi[index], vi[index], options)
        for name, values in part.items():
            if name == "weights":
                for j, row in enumerate(rows):
                    weights[row] = values[j]
            else:
                out[name][rows] = values
    return BatchFit(weights=weights, **out)


def _fit_dense(Y: np.ndarray, V: np.ndarray, opt: PoolOptions) -> dict:
    """Fit every row of the dense (n, k) arrays ``Y``, ``V`` (all analyses with the same k)."""
    n, k = Y.shape
    tau2, iterations, converged = estimate_tau2(Y, V, opt)
    W = 1.0 / (V + tau2[:, None])
    sw = W.sum(axis=1)
    beta = (W * Y).sum(axis=1) / sw
    vb = 1.0 / sw
    level = opt.level / 100.0
    alpha = 1.0 - level
    use_t = opt.ci == "knha" and k > 1
    if use_t:
        rss = (W * (Y - beta[:, None]) ** 2).sum(axis=1)
        s2w = np.where(rss <= _EPS, 0.0, rss / (k - 1))
        vb = vb * s2w
    se = np.sqrt(vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        zval = beta / se
    if use_t:
        crit = stats.t.isf(alpha / 2, k - 1)
        pval = 2 * stats.t.sf(np.abs(zval), k - 1)
    else:
        crit = stats.norm.isf(alpha / 2)
        pval = 2 * stats.norm.sf(np.abs(zval))
    pi_half = crit * np.sqrt(vb + tau2)

    q, q_p, i2, h2, vt = heterogeneity(Y, V, tau2, opt)
    tau2_se = _tau2_se(Y, V, tau2, opt)
    if opt.method != "FE" and opt.qprofile and k > 1:
        lb, ub = qprofile_tau2_ci(Y, V, tau2, level)
    else:
        lb = ub = np.full(n, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        i2_lb, i2_ub = 100 * lb / (vt + lb), 100 * ub / (vt + ub)
        h2_lb, h2_ub = lb / vt + 1, ub / vt + 1
    percent = 100.0 * W / sw[:, None]
    return {
        "estimate": beta,
        "se": se,
        "ci_lower": beta - crit * se,
        "ci_upper": beta + crit * se,
        "zval": zval,
        "p": pval,
        "pi_lower": beta - pi_half,
        "pi_upper": beta + pi_half,
        "tau2": tau2,
        "tau2_se": tau2_se,
        "tau2_ci_lower": lb,
        "tau2_ci_upper": ub,
        "i2": i2,
        "i2_ci_lower": i2_lb,
        "i2_ci_upper": i2_ub,
        "h2": h2,
        "h2_ci_lower": h2_lb,
        "h2_ci_upper": h2_ub,
        "q": q,
        "q_df": np.full(n, k - 1.0),
        "q_p": q_p,
        "iterations": iterations,
        "converged": converged,
        "weights": percent,
    }


# --- tau^2 estimators ---------------------------------------------------------------------------


def estimate_tau2(Y: np.ndarray, V: np.ndarray, opt: PoolOptions):
    """tau^2 per row by ``opt.method``; returns (tau2, iterations, converged)."""
    n, k = Y.shape
    iterations = np.zeros(n, dtype=np.int64)
    converged = np.ones(n, dtype=bool)
    if opt.method == "FE" or k == 1:
        return np.zeros(n), iterations, converged
    Ymc = Y - Y.mean(axis=1, keepdims=True)
    if opt.method == "DL":
        tau2 = _dl(Ymc, V)
    elif opt.method == "HE":
        tau2 = _he(Ymc, V)
    elif opt.method == "HS":
        W = 1.0 / V
        tau2 = (generalised_q(Ymc, V, 0.0) - k) / W.sum(axis=1)
    elif opt.method == "SJ":
        tau0 = (Ymc**2).sum(axis=1) / k
        with np.errstate(invalid="ignore"):
            tau2 = np.where(tau0 > 0, tau0 * generalised_q(Ymc, V, tau0) / (k - 1), 0.0)
    elif opt.method == "PM":
        tau2, converged = _paule_mandel(Y, Ymc, V, opt)
    else:
        tau2, iterations, converged = _fisher_scoring(Ymc, V, opt)
    return np.maximum(tau2, 0.0), iterations, converged


def generalised_q(Y: np.ndarray, V: np.ndarray, tau2) -> np.ndarray:
    """Q(tau^2) = sum w_i (y_i - mu_w)^2 with w_i = 1 / (v_i + tau^2), per row."""
    W = 1.0 / (V + np.reshape(tau2, (-1, 1)))
    sw = W.sum(axis=1)
    mu = (W * Y).sum(axis=1) / sw
    return (W * (Y - mu[:, None]) ** 2).sum(axis=1)


def _dl(Ymc, V):
    k = Ymc.shape[1]
    W = 1.0 / V
    sw = W.sum(axis=1)
    trP = sw - (W**2).sum(axis=1) / sw
    return (generalised_q(Ymc, V, 0.0) - (k - 1)) / trP


def _he(Ymc, V):
    k = Ymc.shape[1]
    rss = (Ymc**2).sum(axis=1)
    trPV = V.sum(axis=1) * (1.0 - 1.0 / k)
    return (rss - trPV) / (k - 1)


def _paule_mandel(Y, Ymc, V, opt):
    """Root of Q(tau^2) = k - 1 on [0, tau2_max], found as metafor does (uniroot)."""
    n, k = Y.shape
    target = k - 1.0
    tau2_max = np.maximum(100.0, 10.0 * _r_mad(Y) ** 2)
    q0 = generalised_q(Ymc, V, 0.0) - target
    qmax = generalised_q(Ymc, V, tau2_max) - target
    tau2 = np.zeros(n)
    converged = np.ones(n, dtype=bool)
    too_low = q0 >= 0
    out_of_range = too_low & (qmax > 0)
    search = too_low & ~out_of_range
    tau2[out_of_range] = np.nan
    converged[out_of_range] = False
    if search.any():
        rows = np.flatnonzero(search)
        roots, ok = brent_roots(
            lambda x, idx: generalised_q(Ymc[rows[idx]], V[rows[idx]], x) - target,
            np.zeros(rows.size), tau2_max[rows], q0[rows], qmax[rows],
            tol=R_UNIROOT_TOL, maxiter=opt.maxiter,
        )
        tau2[rows] = roots
        converged[rows] = ok
    return tau2, converged


def _r_mad(Y):
    """R's ``mad``: median absolute deviation times 1.4826."""
    med = np.median(Y, axis=1, keepdims=True)
    return 1.4826 * np.median(np.abs(Y - med), axis=1)


def _fisher_scoring(Ymc, V, opt):
    """ML, REML and EB by metafor's Fisher scoring, vectorised over rows."""
    n, k = Ymc.shape
    method = opt.method
    tau2 = np.maximum(0.0, _he(Ymc, V))
    iterations = np.zeros(n, dtype=np.int64)
    converged = np.ones(n, dtype=bool)
    active = np.ones(n, dtype=bool)
    while active.any():
        rows = np.flatnonzero(active)
        t = tau2[rows]
        W = 1.0 / (V[rows] + t[:, None])
        sw = W.sum(axis=1)
        resid = Ymc[rows] - ((W * Ymc[rows]).sum(axis=1) / sw)[:, None]
        PY = W * resid
        with np.errstate(divide="ignore", invalid="ignore"):
            if method == "ML":
                adj = ((PY**2).sum(axis=1) - sw) / (W**2).sum(axis=1)
            elif method == "REML":
                s2, s3 = (W**2).sum(axis=1), (W**3).sum(axis=1)
                trP = sw - s2 / sw
                trPP = s2 - 2.0 * s3 / sw + (s2 / sw) ** 2
                adj = ((PY**2).sum(axis=1) - trP) / trPP
            else:  # EB
                adj = ((PY * resid).sum(axis=1) * k / (k - 1) - k) / sw
        adj = np.where(np.isnan(adj), 0.0, adj)
        negative = t + adj < 0
        while negative.any():
            adj = np.where(negative, adj / 2.0, adj)
            negative = t + adj < 0
        iterations[rows] += 1
        new = t + adj
        tau2[rows] = new
        still = np.abs(adj) > opt.threshold
        exhausted = still & (iterations[rows] > opt.maxiter)
        converged[rows[exhausted]] = False
        active[rows] = still & ~exhausted
    if method in ("ML", "REML"):
        stuck = _stuck_at_local_maximum(Ymc, V, tau2, method == "REML", opt.threshold)
        tau2 = np.where(stuck & converged, 0.0, tau2)
    return tau2, iterations, converged


def _stuck_at_local_maximum(Ymc, V, tau2, reml, threshold):
    """metafor's ``ll0check``: a fit whose log-likelihood is below the one at tau^2 = 0."""
    ll0 = log_likelihood(Ymc, V, np.zeros_like(tau2), reml)
    ll = log_likelihood(Ymc, V, tau2, reml)
    return (ll0 - ll > R_UNIROOT_TOL) & (tau2 > threshold)


def log_likelihood(Y, V, tau2, reml: bool):
    """(Restricted) log-likelihood of the random-effects model at tau^2, per row."""
    k = Y.shape[1]
    M = V + tau2[:, None]
    W = 1.0 / M
    sw = W.sum(axis=1)
    mu = (W * Y).sum(axis=1) / sw
    rss = (W * (Y - mu[:, None]) ** 2).sum(axis=1)
    if reml:
        return -0.5 * (k - 1) * np.log(2 * np.pi) - 0.5 * np.log(M).sum(axis=1) - 0.5 * np.log(sw) - 0.5 * rss
    return -0.5 * k * np.log(2 * np.pi) - 0.5 * np.log(M).sum(axis=1) - 0.5 * rss


def _tau2_se(Y, V, tau2, opt):
    """Standard error of tau^2 for the likelihood-based and PM/EB estimators (metafor's formulas)."""
    n, k = Y.shape
    if opt.method == "FE" or k == 1:
        return np.full(n, np.nan)
    W = 1.0 / (V + tau2[:, None])
    sw = W.sum(axis=1)
    s2, s3 = (W**2).sum(axis=1), (W**3).sum(axis=1)
    if opt.method == "ML":
        return np.sqrt(2.0 / s2)
    if opt.method == "REML":
        return np.sqrt(2.0 / (s2 - 2.0 * s3 / sw + (s2 / sw) ** 2))
    if opt.method in ("EB", "PM"):
        return np.sqrt(2.0 * k**2 / (k - 1) / sw**2)
    return _moment_tau2_se(Y, V, tau2, opt.method)


def _moment_tau2_se(Y, V, tau2, method):
    """SE of the method-of-moments estimators (DL, HE, HS, SJ), metafor's formulas.

    With P = diag(w) - w w'/sum(w) (w = 1 for HE), the traces metafor takes of P, PV and their
    products have closed forms in sums of powers of w, so no k x k matrix is built.
    """
    n, k = Y.shape
    t = np.maximum(tau2, 0.0)
    tau0 = (((Y - Y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1) / k)[:, None]
    W = {"HE": np.ones_like(V), "SJ": 1.0 / (V + tau0)}.get(method, 1.0 / V)
    s1, s2, s3 = W.sum(axis=1), (W**2).sum(axis=1), (W**3).sum(axis=1)
    w2v = (W**2 * V).sum(axis=1)
    trP = s1 - s2 / s1
    sPP = s2 - 2 * s3 / s1 + s2**2 / s1**2
    trPV = (W * V).sum(axis=1) - w2v / s1
    sPVPVt = (W**2 * V**2).sum(axis=1) - 2 * (W**3 * V**2).sum(axis=1) / s1 + w2v**2 / s1**2
    sPVP = w2v - 2 * (W**3 * V).sum(axis=1) / s1 + s2 * w2v / s1**2
    if method == "DL":
        return np.sqrt(1 / trP**2 * (2 * (k - 1) + 4 * t * trP + 2 * t**2 * sPP))
    if method == "HS":
        return np.sqrt(1 / s1**2 * (2 * (k - 1) + 4 * t * trP + 2 * t**2 * sPP))
    if method == "HE":
        return np.sqrt(1 / (k - 1) ** 2 * (2 * sPVPVt + 4 * t * trPV + 2 * t**2 * (k - 1)))
    tau0 = tau0[:, 0]
    return np.sqrt(tau0**2 / (k - 1) ** 2 * (2 * sPVPVt + 4 * t * sPVP + 2 * t**2 * sPP))


# --- heterogeneity ------------------------------------------------------------------------------


def heterogeneity(Y, V, tau2, opt: PoolOptions):
    """Cochran's Q (FE weights), its p-value, I^2 (%), H^2 and the typical within-study variance."""
    n, k = Y.shape
    if k == 1:
        return np.zeros(n), np.ones(n), np.zeros(n), np.ones(n), np.zeros(n)
    Ymc = Y - Y.mean(axis=1, keepdims=True)
    q = np.maximum(0.0, generalised_q(Ymc, V, 0.0))
    q_p = stats.chi2.sf(q, k - 1)
    W = 1.0 / V
    if opt.i2_definition == "typical":
        sw = W.sum(axis=1)
        vt = (k - 1) / (sw - (W**2).sum(axis=1) / sw)
    else:
        vt = 1.0 / W.mean(axis=1)
    if opt.method == "FE":
        with np.errstate(divide="ignore", invalid="ignore"):
            i2 = np.maximum(0.0, 100 * (q - (k - 1)) / q)
        i2 = np.where(np.isnan(i2), 0.0, i2)
        h2 = q / (k - 1)
    else:
        i2 = 100 * tau2 / (vt + tau2)
        h2 = tau2 / vt + 1
    return q, q_p, i2, h2, vt


def qprofile_tau2_ci(Y, V, tau2, level):
    """Q-profile confidence interval of tau^2 (Viechtbauer 2007), as metafor's ``confint``."""
    n, k = Y.shape
    alpha = 1.0 - level
    crit_u = stats.chi2.isf(alpha / 2, k - 1)
    crit_l = stats.chi2.ppf(alpha / 2, k - 1)
    tau2_max = np.maximum(100.0, 10.0 * tau2)
    q_min = generalised_q(Y, V, 0.0)
    q_max = generalised_q(Y, V, tau2_max)
    lb = np.full(n, np.nan)
    ub = np.full(n, np.nan)

    below = q_min < crit_l
    lb[below] = 0.0
    ub[below] = 0.0
    ub_at_max = ~below & (q_max > crit_l)
    ub[ub_at_max] = tau2_max[ub_at_max]
    ub_rows = np.flatnonzero(~below & ~ub_at_max)
    ub[ub_rows] = _q_root(Y, V, ub_rows, crit_l, tau2_max, q_min, q_max)

    lb_at_max = q_max > crit_u
    lb[lb_at_max] = tau2_max[lb_at_max]
    ub[lb_at_max] = tau2_max[lb_at_max]
    lb_zero = ~lb_at_max & (q_min < crit_u)
    lb[lb_zero] = 0.0
    lb_rows = np.flatnonzero(~lb_at_max & ~lb_zero)
    lb[lb_rows] = _q_root(Y, V, lb_rows, crit_u, tau2_max, q_min, q_max)
    return lb, ub


def _q_root(Y, V, rows, target, tau2_max, q_min, q_max):
    if rows.size == 0:
        return np.zeros(0)
    roots, _ = brent_roots(
        lambda x, idx: generalised_q(Y[rows[idx]], V[rows[idx]], x) - target,
        np.zeros(rows.size), tau2_max[rows], q_min[rows] - target, q_max[rows] - target,
        tol=R_UNIROOT_TOL, maxiter=1000,
    )
    return roots

"""Fixed- and random-effects pooling of many analyses at once, as metafor's ``rma.uni``.

The engine works on a *batch*: the effects of many analyses laid end to end, with the number of
studies of each. Analyses are stacked as the columns of dense (width, n) arrays, study i of
analysis j at [i, j]; analyses of similar k share one array, the shorter ones padded with y = 0
and v = inf, so that their weights 1 / (v + tau^2) are exactly 0 and every sum over studies is the
sum over the real ones. Every estimator is then a handful of array operations, summed down the
columns, whatever the number of analyses; a single analysis is a batch of one. Sums are plain
sums (``sum``, ``einsum``) run study by study down C-ordered arrays of at least two columns
(numpy sums a single column, or a column-major array, pairwise instead), so an analysis gets the
same bits whatever else is in its batch or chunk.

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

from meta.stats.distributions import (
    chi2_isf,
    chi2_ppf,
    chi2_sf,
    norm_isf,
    norm_sf,
    t_isf,
    t_sf,
)
from meta.stats.options import PoolOptions
from meta.stats.rootfind import R_UNIROOT_TOL, brent_roots

_EPS = np.finfo(float).eps
# Analyses of different k share one padded array while the padding adds at most this share of
# work, or while the array is so small that another pass of the engine would cost more.
_MAX_PADDING = 1.25
_SMALL_ARRAY = 1 << 16


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
    weights: list | None  # per analysis: percent weights of its studies (random-effects weights)


FIELDS = [name for name in BatchFit.__dataclass_fields__ if name != "weights"]


def pool_batch(yi: np.ndarray, vi: np.ndarray, sizes: np.ndarray, options: PoolOptions,
               weights: bool = True) -> BatchFit:
    """Pool every analysis of a batch.

    ``yi`` and ``vi`` hold the studies of all analyses end to end; ``sizes[j]`` is the number of
    studies of analysis j (>= 1). Every ``vi`` must be positive (the sheet checks see to that).
    ``weights=False`` leaves out the per-study weights (``BatchFit.weights`` is then None).
    """
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    sizes = np.asarray(sizes, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    n = sizes.size
    out = {name: np.full(n, np.nan) for name in FIELDS}
    out["k"] = sizes.copy()
    out["iterations"] = np.zeros(n, dtype=np.int64)
    out["converged"] = np.ones(n, dtype=bool)
    percent: list | None = [None] * n if weights else None
    for rows, width in _buckets(sizes):
        cols = _two_columns(rows)
        part = _fit_dense(_Dense.gather(yi, vi, starts[cols], sizes[cols], width), options)
        W = part.pop("W")
        for name, values in part.items():
            out[name][rows] = values[: rows.size]
        if percent is not None:
            share = 100.0 * W / W.sum(axis=0)
            for j, row in enumerate(rows):
                percent[row] = share[: sizes[row], j]
    return BatchFit(weights=percent, **out)


def _two_columns(cols: np.ndarray) -> np.ndarray:
    """``cols``, with a lone column repeated.

    numpy sums a single column in another order than the columns of a wider array (pairwise along
    contiguous memory), so a fit would change in the last bits with what else is in the batch;
    with at least two columns every analysis is summed study by study, in every batch.
    """
    return np.repeat(cols, 2) if cols.size == 1 else cols


def _buckets(sizes: np.ndarray):
    """(rows, width) of the padded arrays: analyses of adjacent k, k = 1 always on its own."""
    if sizes.size == 0:
        return
    order = np.argsort(sizes, kind="stable")
    ks, counts = np.unique(sizes, return_counts=True)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    first = real = 0
    for i, (k, count) in enumerate(zip(ks, counts)):
        if i > first:
            rows = bounds[i + 1] - bounds[first]
            padded = k * rows
            if ks[first] > 1 and padded <= max(_SMALL_ARRAY, _MAX_PADDING * (real + k * count)):
                real += k * count
                continue
            yield np.sort(order[bounds[first]:bounds[i]]), int(ks[i - 1])
            first = i
        real = k * count
    yield np.sort(order[bounds[first]:]), int(ks[-1])


@dataclass(frozen=True)
class _Dense:
    """Analyses as the columns of (width, n) arrays, padded with y = 0 and v = inf."""

    Y: np.ndarray
    V: np.ndarray
    k: np.ndarray  # (n,) studies per column, as float
    valid: np.ndarray | None  # (width, n) True at real studies; None when nothing is padded

    @classmethod
    def gather(cls, yi, vi, starts, sizes, width):
        index = starts[None, :] + np.arange(width)[:, None]
        if (sizes == width).all():
            return cls(yi[index], vi[index], sizes.astype(float), None)
        valid = np.arange(width)[:, None] < sizes[None, :]
        index = np.where(valid, index, 0)
        Y = np.where(valid, yi[index], 0.0)
        V = np.where(valid, vi[index], np.inf)
        return cls(Y, V, sizes.astype(float), valid)

    @property
    def single(self) -> bool:
        return self.Y.shape[0] == 1

    def zero_padded(self, X: np.ndarray) -> np.ndarray:
        return X if self.valid is None else np.where(self.valid, X, 0.0)

    def by_k(self, func) -> np.ndarray:
        """``func(k)`` for each column, computed once per distinct k."""
        ks, inverse = np.unique(self.k, return_inverse=True)
        return np.asarray(func(ks), dtype=float)[inverse]


def _fit_dense(d: _Dense, opt: PoolOptions) -> dict:
    """Fit every column of a padded array."""
    Y, V, k = d.Y, d.V, d.k
    n = k.size
    Ymc = d.zero_padded(Y - Y.sum(axis=0) / k)
    fe = _FixedEffectSums.of(Ymc, V)
    tau2, iterations, converged = estimate_tau2(d, Ymc, fe, opt)
    W = 1.0 / (V + tau2)
    sw = W.sum(axis=0)
    beta = np.einsum("ij,ij->j", W, Y) / sw
    vb = 1.0 / sw
    level = opt.level / 100.0
    alpha = 1.0 - level
    use_t = opt.ci == "knha" and not d.single
    if use_t:
        R = Y - beta
        rss = np.einsum("ij,ij,ij->j", W, R, R)
        s2w = np.where(rss <= _EPS, 0.0, rss / (k - 1))
        vb = vb * s2w
    se = np.sqrt(vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        zval = beta / se
    if use_t:
        crit = d.by_k(lambda ks: t_isf(alpha / 2, ks - 1))
        pval = 2 * t_sf(np.abs(zval), k - 1)
    else:
        crit = norm_isf(alpha / 2)
        pval = 2 * norm_sf(np.abs(zval))
    pi_half = crit * np.sqrt(vb + tau2)

    q, q_p, i2, h2, vt = heterogeneity(d, fe, tau2, opt)
    tau2_se = _tau2_se(d, Ymc, fe, W, sw, tau2, opt)
    if opt.method != "FE" and opt.qprofile and not d.single:
        lb, ub = qprofile_tau2_ci(d, Ymc, fe.q, tau2, level)
    else:
        lb = ub = np.full(n, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        i2_lb, i2_ub = 100 * lb / (vt + lb), 100 * ub / (vt + ub)
        h2_lb, h2_ub = lb / vt + 1, ub / vt + 1
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
        "q_df": k - 1.0,
        "q_p": q_p,
        "iterations": iterations,
        "converged": converged,
        "W": W,
    }


@dataclass(frozen=True)
class _FixedEffectSums:
    """Sums of the fixed-effect weights w = 1/v and Cochran's Q, shared by several estimators."""

    sw: np.ndarray
    s2: np.ndarray
    q: np.ndarray

    @classmethod
    def of(cls, Ymc, V):
        W = 1.0 / V
        return cls(W.sum(axis=0), (W * W).sum(axis=0), generalised_q(Ymc, V, 0.0))

    @property
    def trP(self):
        return self.sw - self.s2 / self.sw


# --- tau^2 estimators ---------------------------------------------------------------------------


def estimate_tau2(d: _Dense, Ymc, fe: _FixedEffectSums, opt: PoolOptions):
    """tau^2 per column by ``opt.method``; returns (tau2, iterations, converged)."""
    k = d.k
    n = k.size
    iterations = np.zeros(n, dtype=np.int64)
    converged = np.ones(n, dtype=bool)
    if opt.method == "FE" or d.single:
        return np.zeros(n), iterations, converged
    if opt.method == "DL":
        tau2 = (fe.q - (k - 1)) / fe.trP
    elif opt.method == "HE":
        tau2 = _he(d, Ymc)
    elif opt.method == "HS":
        tau2 = (fe.q - k) / fe.sw
    elif opt.method == "SJ":
        tau0 = (Ymc * Ymc).sum(axis=0) / k
        with np.errstate(invalid="ignore"):
            tau2 = np.where(tau0 > 0, tau0 * generalised_q(Ymc, d.V, tau0) / (k - 1), 0.0)
    elif opt.method == "PM":
        tau2, converged = _paule_mandel(d, Ymc, fe, opt)
    else:
        tau2, iterations, converged = _fisher_scoring(d, Ymc, opt)
    return np.maximum(tau2, 0.0), iterations, converged


def generalised_q(Y: np.ndarray, V: np.ndarray, tau2) -> np.ndarray:
    """Q(tau^2) = sum w_i (y_i - mu_w)^2 with w_i = 1 / (v_i + tau^2), per column."""
    W = V + tau2
    np.reciprocal(W, out=W)
    R = Y - np.einsum("ij,ij->j", W, Y) / W.sum(axis=0)
    return np.einsum("ij,ij,ij->j", W, R, R)


def _he(d: _Dense, Ymc):
    k = d.k
    rss = (Ymc * Ymc).sum(axis=0)
    trPV = d.zero_padded(d.V).sum(axis=0) * (1.0 - 1.0 / k)
    return (rss - trPV) / (k - 1)


class _QMinus:
    """Q(tau^2) - target for the columns a root finder still works on (see ``brent_roots``).

    The columns are gathered once each time the root finder narrows its working set, not at every
    evaluation.
    """

    def __init__(self, Y, V, columns, target):
        self.Y, self.V, self.columns, self.target = Y, V, columns, target
        self._rows = None

    def __call__(self, x, rows):
        if rows is not self._rows:
            self._rows = rows
            cols = _two_columns(self.columns[rows])
            self._Y, self._V, self._target = self.Y.take(cols, axis=1), self.V.take(cols, axis=1), self.target[rows]
        return generalised_q(self._Y, self._V, _two_columns(x))[: rows.size] - self._target


def _paule_mandel(d: _Dense, Ymc, fe: _FixedEffectSums, opt):
    """Root of Q(tau^2) = k - 1 on [0, tau2_max], found as metafor does (uniroot)."""
    n = d.k.size
    target = d.k - 1.0
    tau2_max = np.maximum(100.0, 10.0 * _r_mad(d) ** 2)
    q0 = fe.q - target
    qmax = generalised_q(Ymc, d.V, tau2_max) - target
    tau2 = np.zeros(n)
    converged = np.ones(n, dtype=bool)
    too_low = q0 >= 0
    out_of_range = too_low & (qmax > 0)
    search = too_low & ~out_of_range
    tau2[out_of_range] = np.nan
    converged[out_of_range] = False
    if search.any():
        rows = np.flatnonzero(search)
        roots, ok = brent_roots(_QMinus(Ymc, d.V, rows, target[rows]), np.zeros(rows.size), tau2_max[rows],
                                q0[rows], qmax[rows], tol=R_UNIROOT_TOL, maxiter=opt.maxiter)
        tau2[rows] = roots
        converged[rows] = ok
    return tau2, converged


def _r_mad(d: _Dense):
    """R's ``mad`` of each column's y: median absolute deviation times 1.4826."""
    out = np.empty(d.k.size)
    for k in np.unique(d.k):
        cols = d.k == k
        Y = d.Y[: int(k), cols]
        out[cols] = 1.4826 * np.median(np.abs(Y - np.median(Y, axis=0)), axis=0)
    return out


def _fisher_scoring(d: _Dense, Ymc, opt):
    """ML, REML and EB by metafor's Fisher scoring, vectorised over columns.

    Every column starts at once, so a column's iteration count is the loop's. Columns that have
    stopped are carried along with a zero step until they are half of the working set, which is
    then narrowed to the columns still iterating.
    """
    n = d.k.size
    method = opt.method
    tau2 = np.maximum(0.0, _he(d, Ymc))
    iterations = np.zeros(n, dtype=np.int64)
    converged = np.ones(n, dtype=bool)
    work = np.arange(n)
    Yw, Vw, kw, t = Ymc, d.V, d.k, tau2.copy()
    alive = np.ones(n, dtype=bool)
    loop = 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        while work.size:
            W = Vw + t
            np.reciprocal(W, out=W)
            sw = W.sum(axis=0)
            resid = Yw - np.einsum("ij,ij->j", W, Yw) / sw
            if method == "EB":
                adj = (np.einsum("ij,ij,ij->j", W, resid, resid) * kw / (kw - 1) - kw) / sw
            else:
                PY = W * resid
                PY2 = np.einsum("ij,ij->j", PY, PY)
                s2 = np.einsum("ij,ij->j", W, W)
                if method == "ML":
                    adj = (PY2 - sw) / s2
                else:
                    trP, trPP = _reml_traces(W, sw, s2)
                    adj = (PY2 - trP) / trPP
            broken = alive & np.isinf(adj)
            converged[work[broken]] = False
            adj = np.where(np.isnan(adj) | ~alive | broken, 0.0, adj)
            _halve_until_nonnegative(t, adj)
            loop += 1
            t = t + adj
            still = (np.abs(adj) > opt.threshold) & ~broken
            exhausted = alive & still & (loop > opt.maxiter)
            stopped = alive & ~(still & ~exhausted)
            converged[work[exhausted]] = False
            tau2[work[stopped]] = t[stopped]
            iterations[work[stopped]] = loop
            alive &= ~stopped
            if 2 * alive.sum() <= alive.size:
                keep = _two_columns(np.flatnonzero(alive))
                work, kw, t, alive = work[keep], kw[keep], t[keep], alive[keep]
                Yw, Vw = Yw.take(keep, axis=1), Vw.take(keep, axis=1)
    if method in ("ML", "REML"):
        tau2[_stuck_at_local_maximum(d, Ymc, tau2, converged, method == "REML", opt.threshold)] = 0.0
    return tau2, iterations, converged


def _reml_traces(W, sw, s2):
    """tr(P) and tr(P P) for P = diag(w) - w w'/sum(w), per column, without cancellation.

    The textbook sw - s2/sw loses every digit when one weight dominates (variances spanning 1e9 or
    more). Where s2/sw^2 > 0.9 (a weight carries most of the total, so at most one digit can be
    lost otherwise), P_ii = w_i (sum of the other weights) / sw is used instead, with the other
    weights summed from exclusive prefix and suffix sums.
    """
    s3 = np.einsum("ij,ij,ij->j", W, W, W)
    trP = sw - s2 / sw
    trPP = s2 - 2.0 * s3 / sw + (s2 / sw) ** 2
    dominated = np.flatnonzero(s2 > 0.9 * sw**2)
    if dominated.size:
        trP[dominated], trPP[dominated] = _stable_traces(W[:, dominated], sw[dominated])
    return trP, trPP


def _stable_traces(W, sw):
    """tr(P) and tr(P P) from leave-one-out sums of the weights (no subtraction of near equals)."""
    def others(X):
        zero = np.zeros_like(X[:1])
        before = np.concatenate([zero, np.cumsum(X[:-1], axis=0)], axis=0)
        after = np.concatenate([np.cumsum(X[:0:-1], axis=0)[::-1], zero], axis=0)
        return before + after

    diag = W * others(W) / sw
    trP = diag.sum(axis=0)
    trPP = (diag**2).sum(axis=0) + (W**2 * others(W**2)).sum(axis=0) / sw**2
    return trP, trPP


def _halve_until_nonnegative(t, adj):
    """metafor's ``while (tau2 + adj < 0) adj <- adj / 2``, in place, for the columns that need it.

    From tau^2 = 0 the halving of a negative step ends exactly at -0.0, so it is set at once.
    """
    adj[(t == 0.0) & (adj < 0)] = -0.0
    rows = np.flatnonzero(t + adj < 0)
    while rows.size:
        adj[rows] /= 2.0
        rows = rows[t[rows] + adj[rows] < 0]


def _stuck_at_local_maximum(d: _Dense, Ymc, tau2, converged, reml, threshold):
    """metafor's ``ll0check``: the converged fits with tau^2 > threshold whose log-likelihood is
    below the one at tau^2 = 0 (columns, as indices)."""
    cols = _two_columns(np.flatnonzero(converged & (tau2 > threshold)))
    if cols.size == 0:
        return cols
    sub = _Dense(*(None if X is None else X.take(cols, axis=-1) for X in (d.Y, d.V, d.k, d.valid)))
    Y = Ymc.take(cols, axis=1)
    ll0 = log_likelihood(sub, Y, np.zeros(cols.size), reml)
    ll = log_likelihood(sub, Y, tau2[cols], reml)
    return cols[ll0 - ll > R_UNIROOT_TOL]


def log_likelihood(d: _Dense, Y, tau2, reml: bool):
    """(Restricted) log-likelihood of the random-effects model at tau^2, per column."""
    k = d.k
    M = d.V + tau2
    W = 1.0 / M
    sw = W.sum(axis=0)
    mu = (W * Y).sum(axis=0) / sw
    rss = (W * (Y - mu) ** 2).sum(axis=0)
    logdet = np.log(M if d.valid is None else np.where(d.valid, M, 1.0)).sum(axis=0)
    if reml:
        return -0.5 * (k - 1) * np.log(2 * np.pi) - 0.5 * logdet - 0.5 * np.log(sw) - 0.5 * rss
    return -0.5 * k * np.log(2 * np.pi) - 0.5 * logdet - 0.5 * rss


def _tau2_se(d: _Dense, Ymc, fe, W, sw, tau2, opt):
    """Standard error of tau^2 for the likelihood-based and PM/EB estimators (metafor's formulas)."""
    k = d.k
    if opt.method == "FE" or d.single:
        return np.full(k.size, np.nan)
    W2 = W * W
    s2 = W2.sum(axis=0)
    if opt.method == "ML":
        return np.sqrt(2.0 / s2)
    if opt.method == "REML":
        s3 = (W2 * W).sum(axis=0)
        return np.sqrt(2.0 / (s2 - 2.0 * s3 / sw + (s2 / sw) ** 2))
    if opt.method in ("EB", "PM"):
        return np.sqrt(2.0 * k**2 / (k - 1) / sw**2)
    return _moment_tau2_se(d, Ymc, tau2, opt.method)


def _moment_tau2_se(d: _Dense, Ymc, tau2, method):
    """SE of the method-of-moments estimators (DL, HE, HS, SJ), metafor's formulas.

    With P = diag(w) - w w'/sum(w) (w = 1 for HE), the traces metafor takes of P, PV and their
    products have closed forms in sums of powers of w, so no k x k matrix is built.
    """
    k = d.k
    t = np.maximum(tau2, 0.0)
    tau0 = (Ymc * Ymc).sum(axis=0) / k
    V = d.zero_padded(d.V)
    if method == "HE":
        W = np.ones_like(V) if d.valid is None else d.valid.astype(float)
    elif method == "SJ":
        W = 1.0 / (d.V + tau0)
    else:
        W = 1.0 / d.V
    s1, s2, s3 = W.sum(axis=0), (W**2).sum(axis=0), (W**3).sum(axis=0)
    w2v = (W**2 * V).sum(axis=0)
    trP = s1 - s2 / s1
    sPP = s2 - 2 * s3 / s1 + s2**2 / s1**2
    trPV = (W * V).sum(axis=0) - w2v / s1
    sPVPVt = (W**2 * V**2).sum(axis=0) - 2 * (W**3 * V**2).sum(axis=0) / s1 + w2v**2 / s1**2
    sPVP = w2v - 2 * (W**3 * V).sum(axis=0) / s1 + s2 * w2v / s1**2
    if method == "DL":
        return np.sqrt(1 / trP**2 * (2 * (k - 1) + 4 * t * trP + 2 * t**2 * sPP))
    if method == "HS":
        return np.sqrt(1 / s1**2 * (2 * (k - 1) + 4 * t * trP + 2 * t**2 * sPP))
    if method == "HE":
        return np.sqrt(1 / (k - 1) ** 2 * (2 * sPVPVt + 4 * t * trPV + 2 * t**2 * (k - 1)))
    return np.sqrt(tau0**2 / (k - 1) ** 2 * (2 * sPVPVt + 4 * t * sPVP + 2 * t**2 * sPP))


# --- heterogeneity ------------------------------------------------------------------------------


def heterogeneity(d: _Dense, fe: _FixedEffectSums, tau2, opt: PoolOptions):
    """Cochran's Q (FE weights), its p-value, I^2 (%), H^2 and the typical within-study variance."""
    k = d.k
    n = k.size
    if d.single:
        return np.zeros(n), np.ones(n), np.zeros(n), np.ones(n), np.zeros(n)
    q = np.maximum(0.0, fe.q)
    q_p = chi2_sf(q, k - 1)
    if opt.i2_definition == "typical":
        vt = (k - 1) / fe.trP
    else:
        vt = 1.0 / (fe.sw / k)
    if opt.method == "FE":
        with np.errstate(divide="ignore", invalid="ignore"):
            i2 = np.maximum(0.0, 100 * (q - (k - 1)) / q)
        i2 = np.where(np.isnan(i2), 0.0, i2)
        h2 = q / (k - 1)
    else:
        i2 = 100 * tau2 / (vt + tau2)
        h2 = tau2 / vt + 1
    return q, q_p, i2, h2, vt


def qprofile_tau2_ci(d: _Dense, Ymc, q_min, tau2, level):
    """Q-profile confidence interval of tau^2 (Viechtbauer 2007), as metafor's ``confint``.

    The roots of both bounds, of every column that needs one, are found in one batch.
    """
    n = d.k.size
    alpha = 1.0 - level
    crit_u = d.by_k(lambda ks: chi2_isf(alpha / 2, ks - 1))
    crit_l = d.by_k(lambda ks: chi2_ppf(alpha / 2, ks - 1))
    tau2_max = np.maximum(100.0, 10.0 * tau2)
    q_max = generalised_q(Ymc, d.V, tau2_max)
    lb = np.full(n, np.nan)
    ub = np.full(n, np.nan)

    below = q_min < crit_l
    lb[below] = 0.0
    ub[below] = 0.0
    ub_at_max = ~below & (q_max > crit_l)
    ub[ub_at_max] = tau2_max[ub_at_max]
    ub_rows = np.flatnonzero(~below & ~ub_at_max)

    lb_at_max = q_max > crit_u
    lb[lb_at_max] = tau2_max[lb_at_max]
    lb_zero = ~lb_at_max & (q_min < crit_u)
    lb[lb_zero] = 0.0
    lb_rows = np.flatnonzero(~lb_at_max & ~lb_zero)

    rows = np.concatenate([ub_rows, lb_rows])
    if rows.size:
        target = np.concatenate([crit_l[ub_rows], crit_u[lb_rows]])
        roots, _ = brent_roots(_QMinus(Ymc, d.V, rows, target), np.zeros(rows.size), tau2_max[rows],
                               q_min[rows] - target, q_max[rows] - target,
                               tol=R_UNIROOT_TOL, maxiter=1000)
        ub[ub_rows] = roots[: ub_rows.size]
        lb[lb_rows] = roots[ub_rows.size:]
    ub[lb_at_max] = tau2_max[lb_at_max]
    return lb, ub

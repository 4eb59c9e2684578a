"""Meta-regression on a design matrix X, as metafor's ``rma.uni(yi, vi, mods = X, intercept = FALSE)``.

One analysis at a time (the small-study tests need one model per analysis, with p = 2). Each tau^2
estimator is metafor's for a model with moderators (Viechtbauer 2005, J Educ Behav Stat 30:261;
Raudenbush 2009, in *The Handbook of Research Synthesis*, 2nd ed., ch. 16), with
P = W - W X (X'WX)^-1 X'W and k - p residual degrees of freedom:

- DL   (Y'PY - (k - p)) / tr(P), FE weights
- HE   (Y'PY - tr(PV)) / (k - p), P from unit weights
- HS   (Y'PY - k) / sum(w), FE weights
- SJ   tau0^2 Y'PY / (k - p), weights from tau0^2 = mean squared deviation of yi
- PM   root of Y'PY(tau^2) = k - p on [0, max(100, 10 mad(yi)^2)] by R's ``uniroot``
- ML, REML, EB  Fisher scoring from the HE value, stopped when tau^2 changes by less than the
       threshold (1e-5), with step halving and, for ML/REML, metafor's check against a local maximum.

Coefficients by weighted least squares; z tests, or t tests on k - p df with the variance scaled by
the weighted residual sum of squares (Knapp & Hartung 2003, Stat Med 22:2693).
Where metafor stops with an error, ``fit_regression`` raises ModelError with metafor's reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meta.errors import MetaError
from meta.stats.distributions import norm_sf, t_sf
from meta.stats.options import CI_METHODS, METHODS, check_choice
from meta.stats.rootfind import R_UNIROOT_TOL, brent_roots

_EPS = np.finfo(float).eps
LM_TOLERANCE = 1e-7  # R's lm(): a column is redundant below this share of its norm (dqrdc2)
EIGEN_TOLERANCE = 1e-7  # metafor's control evtol: smallest eigenvalue of X'X for a full-rank X


class ModelError(MetaError):
    """A model metafor would refuse to fit (too few studies, rank deficiency, no convergence)."""


@dataclass(frozen=True)
class RegressionFit:
    """A fitted meta-regression: one entry per column of X in ``beta``, ``se``, ``zval``, ``p``.

    ``zval`` holds t statistics on ``df`` = k - p degrees of freedom when ``test`` is "knha"
    (``df`` is None for z tests); ``iterations`` counts Fisher-scoring steps (0 for the others).
    """

    k: int
    method: str
    test: str
    beta: tuple[float, ...]
    se: tuple[float, ...]
    zval: tuple[float, ...]
    p: tuple[float, ...]
    tau2: float
    df: int | None
    iterations: int


def fit_regression(yi, vi, X, method: str = "REML", test: str = "z", threshold: float = 1e-5,
                   maxiter: int = 100) -> RegressionFit:
    """Fit the mixed-effects meta-regression of ``yi`` on the columns of ``X`` (k x p, no intercept added)."""
    check_choice("method", method, METHODS)
    check_choice("test", test, CI_METHODS)
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    X = np.asarray(X, dtype=float)
    k, p = X.shape
    _check_design(X, k, p, method)
    tau2, iterations = estimate_tau2(yi, vi, X, method, threshold, maxiter)
    w = 1.0 / (vi + tau2)
    vb = _inv_xwx(X, w)
    beta = vb @ (X.T @ (w * yi))
    df = None
    if test == "knha":
        rss = float(np.sum(w * (yi - X @ beta) ** 2))
        vb = vb * (0.0 if rss <= _EPS else rss / (k - p))
        df = k - p
    se = np.sqrt(np.diag(vb))
    with np.errstate(divide="ignore", invalid="ignore"):
        zval = beta / se
    pval = 2 * (t_sf(np.abs(zval), df) if df is not None else norm_sf(np.abs(zval)))
    return RegressionFit(k, method, test, _floats(beta), _floats(se), _floats(zval), _floats(pval),
                         float(tau2), df, iterations)


def _floats(values) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _check_design(X, k, p, method):
    """metafor's checks before fitting: enough studies, no redundant column, X'X of full rank."""
    needed = p if method == "FE" else p + 1
    if k < needed:
        raise ModelError(f"k = {k} studies are too few: the model estimates {needed} parameters")
    R = np.linalg.qr(X, mode="r")
    norms = np.linalg.norm(X, axis=0)
    if np.any(np.abs(np.diag(R)) < LM_TOLERANCE * norms):
        raise ModelError("a column of the design matrix is redundant (constant or collinear); "
                         "the model cannot be fitted")
    if np.any(np.linalg.eigvalsh(X.T @ X) <= EIGEN_TOLERANCE):
        raise ModelError("the design matrix is not of full rank; the model cannot be fitted")


def estimate_tau2(yi, vi, X, method, threshold=1e-5, maxiter=100) -> tuple[float, int]:
    """tau^2 of the model with design X by ``method`` (metafor's ``rma.uni``); returns (tau2, iterations)."""
    k, p = X.shape
    if method == "FE":
        return 0.0, 0
    Y = yi - yi.mean()
    iterations = 0
    if method == "DL":
        P = _p_matrix(X, 1.0 / vi)
        tau2 = (Y @ P @ Y - (k - p)) / np.trace(P)
    elif method == "HS":
        P = _p_matrix(X, 1.0 / vi)
        tau2 = (Y @ P @ Y - k) / np.sum(1.0 / vi)
    elif method == "SJ":
        tau0 = np.mean(Y**2)
        tau2 = tau0 * (Y @ _p_matrix(X, 1.0 / (vi + tau0)) @ Y) / (k - p)
    elif method == "PM":
        tau2 = _paule_mandel(yi, Y, vi, X, maxiter)
    elif method == "HE":
        tau2 = _hedges(Y, vi, X)
    else:
        tau2, iterations = _fisher_scoring(Y, vi, X, method, threshold, maxiter)
    return max(0.0, float(tau2)), iterations


def _inv_xwx(X, w):
    """(X'WX)^-1 from the QR decomposition of W^(1/2) X, as metafor's ``.invcalc``."""
    R = np.linalg.qr(np.sqrt(w)[:, None] * X, mode="r")
    R_inv = np.linalg.inv(R)
    return R_inv @ R_inv.T


def _p_matrix(X, w):
    """P = W - W X (X'WX)^-1 X'W."""
    WX = w[:, None] * X
    return np.diag(w) - WX @ _inv_xwx(X, w) @ WX.T


def _hedges(Y, vi, X):
    k, p = X.shape
    P = np.eye(k) - X @ _inv_xwx(X, np.ones(k)) @ X.T
    return (Y @ P @ Y - np.sum(np.diag(P) * vi)) / (k - p)


def _residual_q(Y, vi, X, tau2) -> float:
    """Y'PY at tau^2: the generalised Q of the regression."""
    return float(Y @ _p_matrix(X, 1.0 / (vi + tau2)) @ Y)


def _paule_mandel(yi, Y, vi, X, maxiter):
    k, p = X.shape
    target = k - p
    tau2_max = max(100.0, 10.0 * _r_mad(yi) ** 2)
    q0 = _residual_q(Y, vi, X, 0.0) - target
    if q0 < 0:
        return 0.0
    q_max = _residual_q(Y, vi, X, tau2_max) - target
    if q_max > 0:
        raise ModelError(f"Paule-Mandel: Q(tau^2) stays above k - p up to tau^2 = {tau2_max:g} "
                         "(metafor: 'Value of tau2.max too low')")
    roots, _ = brent_roots(
        lambda x, idx: np.array([_residual_q(Y, vi, X, t) for t in x]) - target,
        np.zeros(1), np.array([tau2_max]), np.array([q0]), np.array([q_max]),
        tol=R_UNIROOT_TOL, maxiter=maxiter)
    return float(roots[0])


def _r_mad(y):
    """R's ``mad``: median absolute deviation times 1.4826."""
    return 1.4826 * float(np.median(np.abs(y - np.median(y))))


def _fisher_scoring(Y, vi, X, method, threshold, maxiter):
    k, p = X.shape
    tau2 = max(0.0, float(_hedges(Y, vi, X)))
    change = threshold + 1.0
    iterations = 0
    while change > threshold:
        iterations += 1
        old = tau2
        w = 1.0 / (vi + tau2)
        P = _p_matrix(X, w)
        PY = P @ Y
        with np.errstate(divide="ignore", invalid="ignore"):
            if method == "ML":
                adj = (PY @ PY - w.sum()) / np.sum(w**2)
            elif method == "REML":
                adj = (PY @ PY - np.trace(P)) / np.sum(P * P)
            else:  # EB
                adj = ((Y @ PY) * k / (k - p) - k) / w.sum()
        adj = 0.0 if np.isnan(adj) else float(adj)
        while tau2 + adj < 0:
            adj /= 2.0
        tau2 = tau2 + adj
        change = abs(old - tau2)
        if iterations > maxiter:
            raise ModelError(f"Fisher scoring for {method} did not converge in {maxiter} iterations")
    if method in ("ML", "REML"):
        reml = method == "REML"
        stuck = log_likelihood(Y, vi, X, 0.0, reml) - log_likelihood(Y, vi, X, tau2, reml) > R_UNIROOT_TOL
        if stuck and tau2 > threshold:
            tau2 = 0.0
    return tau2, iterations


def log_likelihood(Y, vi, X, tau2, reml: bool) -> float:
    """(Restricted) log-likelihood of the meta-regression at tau^2 (metafor's ``ll0check`` form)."""
    k, p = X.shape
    w = 1.0 / (vi + tau2)
    beta = _inv_xwx(X, w) @ (X.T @ (w * Y))
    rss = np.sum(w * (Y - X @ beta) ** 2)
    if reml:
        _, logdet = np.linalg.slogdet(X.T @ (w[:, None] * X))
        return float(-0.5 * (k - p) * np.log(2 * np.pi) - 0.5 * np.sum(np.log(vi + tau2))
                     - 0.5 * logdet - 0.5 * rss)
    return float(-0.5 * k * np.log(2 * np.pi) - 0.5 * np.sum(np.log(vi + tau2)) - 0.5 * rss)

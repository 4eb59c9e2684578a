"""The regression tests of R meta's ``metabias`` for small-study effects (funnel plot asymmetry).

Each test is a weighted regression of a response on a predictor, reported as the t statistic of the
slope on k - 2 degrees of freedom, as ``metabias`` reports it (GitHub guido-s/meta, ``R/metabias.R``,
``metabias.meta``, "(b) Linear regression tests", and its internal ``linregcore``):

- ``egger_test`` — Egger et al. 1997 (BMJ 315:629): yi on its standard error, weights 1/vi, with a
  multiplicative dispersion (ordinary weighted least squares; metafor's ``regtest(model = "lm")``).
- ``thompson_sharp_test`` — Thompson & Sharp 1999 (Stat Med 18:2693): the same regression with an
  additive between-study variance, fitted with the analysis' tau^2 estimator (metafor's
  ``regtest(model = "rma")`` of an ``rma(test = "t")`` fit: Wald statistic, t distribution).
- ``harbord_test`` — Harbord et al. 2006 (Stat Med 25:3443): the efficient score Z and its variance V
  of the log odds ratio, Z/V on 1/sqrt(V) with weights V; for risk ratios the score of Harbord et al.
  2009 (Stata J 9:197) with the variance ``metabias`` uses.
- ``peters_test`` — Peters et al. 2006 (JAMA 295:676): yi on 1/N (N = total sample size), weights
  1 / (1/(events) + 1/(non-events)) of the pooled arms.

The 2x2 counts ``a, b, c, d`` (events and non-events, treatment then control) are those the effect
sizes used (0.5 added to every cell of a table with a zero cell); ``metabias`` takes the raw counts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from meta.stats.distributions import t_sf
from meta.stats.options import PoolOptions
from meta.stats.regression import ModelError, fit_regression
from meta.stats.results import json_value

MIN_STUDIES = 3  # metabias tests nothing below 3 studies (its ``k < 3`` rule)


@dataclass(frozen=True)
class AsymmetryTest:
    """A test of funnel plot asymmetry: ``statistic`` (t or z; Kendall's tau for Begg), ``df`` (None
    for a z test or Begg's), two-sided ``p``."""

    statistic: float
    df: int | None
    p: float

    def to_dict(self) -> dict:
        return {name: json_value(value) for name, value in asdict(self).items()}


@dataclass(frozen=True)
class TwoByTwo:
    """The 2x2 tables of the studies: events ``a`` and non-events ``b`` of the treatment arms, ``c`` and
    ``d`` of the control arms (numpy arrays, one entry per study)."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray


def default_test(measure: str, binary: bool) -> str:
    """The test ``metabias`` runs by default: Harbord for odds ratios of 2x2 tables (``metabin`` with
    ``sm = "OR"``), Egger otherwise (Sterne et al. 2011, BMJ 343:d4002)."""
    return "harbord" if binary and measure == "OR" else "egger"


# --- the regressions ------------------------------------------------------------------------------


def weighted_slope_test(y, x, w) -> AsymmetryTest:
    """t test of the slope of the weighted least-squares line y = b0 + b1 x (weights w), as R's
    ``lm(y ~ x, weights = w)``: the residual variance scales the covariance; df = k - 2."""
    y, x, w = (np.asarray(v, dtype=float) for v in (y, x, w))
    k = y.size
    if k < MIN_STUDIES:
        raise ModelError(f"a regression test needs at least {MIN_STUDIES} studies")
    if np.unique(x).size == 1:
        raise ModelError("every study has the same predictor value (e.g. the same precision)")
    X = np.column_stack([np.ones(k), x])
    xwx_inv = np.linalg.inv(X.T @ (w[:, None] * X))
    beta = xwx_inv @ (X.T @ (w * y))
    residual_variance = np.sum(w * (y - X @ beta) ** 2) / (k - 2)
    se_slope = np.sqrt(residual_variance * xwx_inv[1, 1])
    return _t_result(beta[1] / se_slope, k - 2)


def egger_test(yi, vi) -> AsymmetryTest:
    """Egger's classical test: yi on sqrt(vi), weights 1/vi (``metabias(method.bias = "Egger")``)."""
    vi = np.asarray(vi, dtype=float)
    return weighted_slope_test(yi, np.sqrt(vi), 1.0 / vi)


def thompson_sharp_test(yi, vi, options: PoolOptions) -> AsymmetryTest:
    """Thompson & Sharp's test: the meta-regression of yi on sqrt(vi) with the analysis' tau^2
    estimator; the slope's Wald statistic on a t distribution with k - 2 df
    (``metabias(method.bias = "Thompson")``)."""
    yi, vi = np.asarray(yi, dtype=float), np.asarray(vi, dtype=float)
    if yi.size < MIN_STUDIES:
        raise ModelError(f"a regression test needs at least {MIN_STUDIES} studies")
    if np.unique(vi).size == 1:
        raise ModelError("every study has the same precision")
    design = np.column_stack([np.ones(yi.size), np.sqrt(vi)])
    fit = fit_regression(yi, vi, design, options.method, "z", options.threshold, options.maxiter)
    return _t_result(fit.zval[1], yi.size - 2)


def harbord_test(cells: TwoByTwo, measure: str) -> AsymmetryTest:
    """Harbord's score test: Z/V on 1/sqrt(V), weights V (``metabias(method.bias = "Harbord")``).

    Odds ratio (Harbord et al. 2006): Z = a - (a + c) n1 / N, V = n1 n2 (a + c)(b + d) / (N^2 (N - 1)).
    Risk ratio (Harbord et al. 2009, as ``metabias`` codes it): Z = (a N - (a + c) n1) / (b + d),
    V = N/4 (a + c) / (b + d). Other measures use the odds-ratio score, as ``metabias`` does.
    """
    a, b, c, d = cells.a, cells.b, cells.c, cells.d
    n1, n2 = a + b, c + d
    total = n1 + n2
    if measure == "RR":
        score = (a * total - (a + c) * n1) / (b + d)
        variance = total / 4 * (a + c) / (b + d)
    else:
        score = a - (a + c) * n1 / total
        variance = n1 * n2 * (a + c) * (b + d) / (total**2 * (total - 1))
    return weighted_slope_test(score / variance, 1.0 / np.sqrt(variance), variance)


def peters_test(yi, cells: TwoByTwo) -> AsymmetryTest:
    """Peters' test: yi on 1/N, weights 1 / (1/(a + c) + 1/(b + d)) (``metabias(method.bias = "Peters")``)."""
    a, b, c, d = cells.a, cells.b, cells.c, cells.d
    variance = 1.0 / (a + c) + 1.0 / (b + d)
    return weighted_slope_test(yi, 1.0 / (a + b + c + d), 1.0 / variance)


def _t_result(statistic: float, df: int) -> AsymmetryTest:
    return AsymmetryTest(float(statistic), int(df), float(2 * t_sf(abs(statistic), df)))


# --- all tests of one analysis --------------------------------------------------------------------


@dataclass(frozen=True)
class SmallStudyTests:
    """The six tests of ``meta bias --json`` (None where a test does not apply or cannot be computed)
    and the name of the one ``metabias`` uses by default."""

    egger: AsymmetryTest | None
    egger_rma: AsymmetryTest | None
    thompson_sharp: AsymmetryTest | None
    peters: AsymmetryTest | None
    harbord: AsymmetryTest | None
    begg: AsymmetryTest | None
    default_test: str

    NAMES: ClassVar[tuple[str, ...]] = ("egger", "egger_rma", "thompson_sharp", "peters", "harbord", "begg")

    def to_dict(self) -> dict:
        """``{name: {statistic, df, p} or None}`` for the six tests."""
        return {name: (test.to_dict() if (test := getattr(self, name)) else None) for name in self.NAMES}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

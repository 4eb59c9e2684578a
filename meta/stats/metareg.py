"""Meta-regression on study-level moderators, as metafor's ``rma(yi, vi, mods = ~ ..., method, test)``.

The moderator table becomes a design matrix with an intercept: numeric columns as they are, and
categorical columns (text, or the columns named in ``categorical``) dummy-coded with the first
level as the reference, as R codes a ``factor``. Studies with a missing moderator are left out,
as metafor's ``na.action = "na.omit"`` does. The model is fitted by ``regression.fit_regression``
(every tau^2 estimator of metafor for a model with moderators; Viechtbauer 2005, J Educ Behav Stat
30:261), and the statistics ``rma`` prints are added to it (Viechtbauer 2010, J Stat Softw 36(3),
section 3.3; Raudenbush 2009, in *The Handbook of Research Synthesis*, 2nd ed., ch. 16):

- QM, the omnibus test of the moderators: the Wald statistic of all coefficients but the
  intercept, on chi^2(m); with Knapp-Hartung (``test = "knha"``) QM / m on F(m, k - p)
  (Knapp & Hartung 2003, Stat Med 22:2693).
- QE, the test for residual heterogeneity: the weighted residual sum of squares with
  fixed-effect weights, on chi^2(k - p).
- I^2 and H^2 of the residual heterogeneity: tau^2 against the typical within-study variance
  (k - p) / tr(P), P = W - W X (X'WX)^-1 X'W with W = diag(1/vi) (Higgins & Thompson 2002);
  for the fixed-effect model from QE.
- R^2, the share of heterogeneity accounted for by the moderators: max(0, (tau^2_0 - tau^2) /
  tau^2_0) with tau^2_0 from the intercept-only model with the same estimator (Raudenbush 2009);
  0 where tau^2_0 is 0. For the fixed-effect model, metafor's adjusted R^2 of the weighted least
  squares fit.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from meta.stats.distributions import chi2_sf, f_sf, norm_isf, t_isf
from meta.stats.options import CI_METHODS, METHOD_NAMES, METHODS, check_choice
from meta.stats.regression import (
    ModelError,
    _inv_xwx,
    _p_matrix,
    estimate_tau2,
    fit_regression,
)
from meta.stats.results import json_value

INTERCEPT = "intrcpt"  # metafor's name of the intercept
_EPS = np.finfo(float).eps


@dataclass(frozen=True)
class Coefficient:
    """One model coefficient: ``statistic`` is z, or t on ``df`` = k - p with Knapp-Hartung;
    ``p`` two-sided; ``ci_lower``..``ci_upper`` the confidence interval at the model's level."""

    name: str
    estimate: float
    se: float
    statistic: float
    p: float
    ci_lower: float
    ci_upper: float


@dataclass(frozen=True)
class MetaRegression:
    """A fitted mixed-effects meta-regression (fixed-effects for ``method`` "FE").

    ``k`` studies used (``omitted`` names those left out for a missing moderator), ``p``
    coefficients including the intercept; ``coefficients`` in design order (intercept first);
    ``df`` = k - p for Knapp-Hartung t tests, None for z tests. ``tau2`` residual between-study
    variance; ``i2`` (%) and ``h2`` residual heterogeneity; ``r2`` (%) share of the heterogeneity
    of the intercept-only model accounted for by the moderators (None where that model cannot be
    fitted; NaN for a saturated fixed-effects model, as metafor). ``qm`` omnibus test of the moderators on ``qm_df`` (chi^2 df, or F numerator and
    denominator df with Knapp-Hartung) with p-value ``qm_p``; ``qe`` test for residual
    heterogeneity on ``qe_df`` = k - p with p-value ``qe_p``. ``iterations`` counts Fisher-scoring
    steps of ML, REML and EB.
    """

    k: int
    p: int
    method: str
    test: str
    level: float
    coefficients: tuple[Coefficient, ...]
    df: int | None
    tau2: float
    i2: float
    h2: float
    r2: float | None
    qm: float
    qm_df: tuple[int, ...]
    qm_p: float
    qe: float
    qe_df: int
    qe_p: float
    iterations: int
    omitted: tuple[str, ...]
    warnings: tuple[str, ...]

    def coefficient(self, name: str) -> Coefficient:
        """The coefficient called ``name`` (e.g. "intrcpt", "ablat", "allocrandom")."""
        for c in self.coefficients:
            if c.name == name:
                return c
        raise KeyError(f"no coefficient {name!r}; the model has {', '.join(c.name for c in self.coefficients)}")

    def to_dict(self) -> dict:
        """JSON-safe form (NaN and infinities become None)."""
        out = {name: json_value(value) for name, value in asdict(self).items() if name != "coefficients"}
        out["coefficients"] = [{name: json_value(v) for name, v in asdict(c).items()} for c in self.coefficients]
        out["qm_df"], out["omitted"], out["warnings"] = list(self.qm_df), list(self.omitted), list(self.warnings)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)




@dataclass(frozen=True)
class Design:
    """The design matrix built from a moderator table: ``X`` (k x p, intercept first) with column
    ``names``, the rows ``kept`` (indices into the table) and the ``levels`` of every categorical
    moderator (the first is the reference)."""

    X: np.ndarray
    names: tuple[str, ...]
    kept: tuple[int, ...]
    levels: dict


def design_matrix(moderators, categorical: tuple[str, ...] = ()) -> Design:
    """Intercept, numeric moderators as they are, categorical ones as dummies (R's ``factor`` coding).

    ``moderators``: a DataFrame or a mapping column -> values, one value per study. A column is
    categorical if it holds text (or is a pandas Categorical, whose category order is kept) or is
    named in ``categorical``; its levels are otherwise sorted (numbers numerically, text by code
    point) and the first is the reference. Rows with a missing value in any moderator are left out.
    """
    table = pd.DataFrame(moderators).reset_index(drop=True)
    if table.shape[1] == 0:
        raise ModelError("no moderators given; a meta-regression needs at least one")
    unknown = [c for c in categorical if c not in table.columns]
    if unknown:
        raise ModelError(f"categorical moderator(s) {', '.join(unknown)} not in the table "
                         f"(columns: {', '.join(map(str, table.columns))})")
    missing = table.isna() | table.apply(lambda col: col.astype(str).str.strip() == "")
    kept = np.flatnonzero(~missing.any(axis=1))
    columns, names, levels = [np.ones(kept.size)], [INTERCEPT], {}
    for name in table.columns:
        values = table[name].iloc[kept]
        if name in categorical or not _numeric(table[name]):
            order = _levels(table[name], kept)
            levels[name] = tuple(_level_text(v) for v in order)
            for level in order[1:]:
                columns.append((values == level).to_numpy(dtype=float))
                names.append(f"{name}{_level_text(level)}")
        else:
            columns.append(pd.to_numeric(values).to_numpy(dtype=float))
            names.append(str(name))
    return Design(np.column_stack(columns), tuple(names), tuple(int(i) for i in kept), levels)


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _levels(column: pd.Series, kept) -> list:
    """Levels present among the kept rows: category order for a Categorical, else sorted."""
    present = set(column.iloc[kept])
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [c for c in column.cat.categories if c in present]
    return sorted(present)


def _level_text(value) -> str:
    """A level as R prints it: 2 for 2.0, text as it is."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def fit_metareg(yi, vi, moderators, method: str = "REML", test: str = "z", level: float = 95.0,
                categorical: tuple[str, ...] = (), studies=None, threshold: float = 1e-5,
                maxiter: int = 100) -> MetaRegression:
    """Meta-regression of ``yi`` (variances ``vi``) on the moderator table, as metafor's ``rma``.

    ``method``: any tau^2 estimator of METHODS ("FE" for the fixed-effects model); ``test``: "z" or
    "knha"; ``studies``: labels (for the names of studies left out). Raises ModelError where metafor
    stops (too few studies, a redundant moderator, no convergence).
    """
    check_choice("method", method, METHODS)
    check_choice("test", test, CI_METHODS)
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    labels = [str(s) for s in studies] if studies is not None else [f"study {i + 1}" for i in range(yi.size)]
    if not yi.size == vi.size == len(labels) == len(pd.DataFrame(moderators)):
        raise ModelError("yi, vi, the study labels and the moderator table must have one entry per study")
    if not (np.all(np.isfinite(yi)) and np.all(np.isfinite(vi)) and np.all(vi > 0)):
        raise ModelError("every yi must be a number and every vi a positive number")
    design = design_matrix(moderators, tuple(categorical))
    kept = np.array(design.kept, dtype=int)
    omitted = tuple(labels[i] for i in sorted(set(range(yi.size)) - set(design.kept)))
    warnings = [f"{len(omitted)} stud{'y' if len(omitted) == 1 else 'ies'} left out for a missing moderator: "
                + ", ".join(omitted)] if omitted else []
    y, v, X = yi[kept], vi[kept], design.X
    fit = fit_regression(y, v, X, method, test, threshold, maxiter)
    k, p = X.shape
    beta, se = np.array(fit.beta), np.array(fit.se)
    crit = t_isf((1 - level / 100) / 2, fit.df) if fit.df is not None else norm_isf((1 - level / 100) / 2)
    coefficients = tuple(Coefficient(name, b, s, z, pv, b - crit * s, b + crit * s)
                         for name, b, s, z, pv in zip(design.names, beta, se, fit.zval, fit.p))
    qm, qm_df, qm_p = _omnibus(y, v, X, beta, fit, test)
    qe, vt = _residual_heterogeneity(y, v, X) if k > p else (0.0, 0.0)
    if k == p:  # a saturated fixed-effects model: no residual heterogeneity (metafor)
        i2, h2 = 0.0, 1.0
    elif method == "FE":
        i2, h2 = max(0.0, 100 * (qe - (k - p)) / qe), qe / (k - p)
    else:
        i2, h2 = 100 * fit.tau2 / (vt + fit.tau2), fit.tau2 / vt + 1
    r2, r2_warning = _pseudo_r2(y, v, X, fit, threshold, maxiter)
    if r2_warning:
        warnings.append(r2_warning)
    return MetaRegression(
        k=k, p=p, method=method, test=test, level=float(level), coefficients=coefficients, df=fit.df,
        tau2=fit.tau2, i2=float(i2), h2=float(h2), r2=r2, qm=qm, qm_df=qm_df, qm_p=qm_p, qe=qe,
        qe_df=k - p, qe_p=float(chi2_sf(qe, k - p)) if k > p else 1.0, iterations=fit.iterations, omitted=omitted,
        warnings=tuple(warnings))


def _omnibus(y, v, X, beta, fit, test) -> tuple[float, tuple[int, ...], float]:
    """Wald test of every coefficient but the intercept (metafor's QM); NaN where the covariance of
    the moderators' coefficients is singular (metafor: NA)."""
    k, p = X.shape
    m = p - 1
    w = 1.0 / (v + fit.tau2)
    vb = _inv_xwx(X, w)
    if test == "knha":  # scaled as fit_regression scales it (Knapp & Hartung 2003)
        rss = float(np.sum(w * (y - X @ beta) ** 2))
        vb = vb * (0.0 if rss <= _EPS else rss / (k - p))
    b = beta[1:]
    try:
        qm = float(b @ np.linalg.solve(vb[1:, 1:], b))
    except np.linalg.LinAlgError:
        qm = math.nan
    if test == "knha":
        qm /= m
        return qm, (m, k - p), float(f_sf(qm, m, k - p))
    return qm, (m,), float(chi2_sf(qm, m))


def _residual_heterogeneity(y, v, X) -> tuple[float, float]:
    """QE with fixed-effect weights and the typical within-study variance (k - p) / tr(P)."""
    k, p = X.shape
    P = _p_matrix(X, 1.0 / v)
    qe = max(0.0, float(y @ P @ y))
    return qe, (k - p) / float(np.trace(P))


def _pseudo_r2(y, v, X, fit, threshold, maxiter) -> tuple[float | None, str]:
    """metafor's R^2 (``r2def = "1"``); None with a warning where the intercept-only model fails."""
    k, p = X.shape
    if fit.method == "FE":
        if np.var(y) == 0:
            return 0.0, ""
        if k == p:  # a saturated model: lm's adjusted R^2 is NaN
            return math.nan, ""
        w = 1.0 / v
        beta = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * y))
        rss = float(np.sum(w * (y - X @ beta) ** 2))
        tss = float(np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2))
        adjusted = 1 - (rss / tss) * (k - 1) / (k - p)
        return max(0.0, 100 * adjusted), ""
    try:
        tau2_0, _ = estimate_tau2(y, v, np.ones((k, 1)), fit.method, threshold, maxiter)
    except ModelError as error:
        return None, f"R^2 not computed: the intercept-only model could not be fitted ({error})"
    if tau2_0 == 0:
        return 0.0, ""
    return max(0.0, 100 * (tau2_0 - fit.tau2) / tau2_0), ""


def render_metareg_text(result: MetaRegression) -> str:
    """A metafor-like printout of the model."""
    r = result
    model = ("Fixed-effects model" if r.method == "FE"
             else f"Mixed-effects model; tau^2 estimator: {r.method} ({METHOD_NAMES[r.method]})")
    lines = [f"{model} (k = {r.k})", ""]
    if r.method != "FE":
        lines += [f"tau^2 (estimated amount of residual heterogeneity):     {r.tau2:.4f}",
                  f"I^2 (residual heterogeneity / unaccounted variability): {r.i2:.2f}%",
                  f"H^2 (unaccounted variability / sampling variability):   {r.h2:.2f}"]
    if r.r2 is not None:
        lines.append(f"R^2 (amount of heterogeneity accounted for):            {r.r2:.2f}%")
    lines += ["", f"Test for residual heterogeneity: QE(df = {r.qe_df}) = {r.qe:.4f}, p = {_p(r.qe_p)}"]
    if r.test == "knha":
        lines.append(f"Test of moderators: F(df1 = {r.qm_df[0]}, df2 = {r.qm_df[1]}) = {r.qm:.4f}, p = {_p(r.qm_p)}")
    else:
        lines.append(f"Test of moderators: QM(df = {r.qm_df[0]}) = {r.qm:.4f}, p = {_p(r.qm_p)}")
    stat = "tval" if r.test == "knha" else "zval"
    width = max(len(c.name) for c in r.coefficients)
    lines += ["", f"Model results ({'t on %d df' % r.df if r.df is not None else 'z'}; {r.level:g}% CI):", "",
              f"  {'':<{width}}  {'estimate':>9}  {'se':>8}  {stat:>8}  {'p':>7}  {'ci.lb':>9}  {'ci.ub':>9}"]
    for c in r.coefficients:
        lines.append(f"  {c.name:<{width}}  {c.estimate:9.4f}  {c.se:8.4f}  {c.statistic:8.4f}  {_p(c.p):>7}  "
                     f"{c.ci_lower:9.4f}  {c.ci_upper:9.4f}")
    for warning in r.warnings:
        lines.append(f"Warning: {warning}")
    return "\n".join(lines) + "\n"


def _p(p: float) -> str:
    if p != p:
        return "NA"
    return "<.0001" if p < 1e-4 else f"{p:.4f}"

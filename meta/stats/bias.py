"""Small-study tests and sensitivity of one random-effects analysis, as metafor computes them.

- Egger's regression test as metafor's ``regtest`` default: the mixed-effects meta-regression of
  yi on their standard errors with the analysis' tau^2 estimator, its z (or Knapp-Hartung t) test
  of the slope (Egger et al. 1997, BMJ 315:629; Sterne & Egger 2005, in *Publication Bias in
  Meta-Analysis*, ch. 6).
- Begg's rank correlation test as ``ranktest``: Kendall's tau between standardised deviations from
  the fixed-effect mean and the variances (Begg & Mazumdar 1994, Biometrics 50:1088); exact p-value
  unless there are ties, as R's ``cor.test(exact = TRUE)``.
- Trim-and-fill as ``trimfill``: estimator L0, the side chosen from the sign of the slope of the
  same regression (Duval & Tweedie 2000, Biometrics 56:455 and JASA 95:89).
- Leave-one-out as ``leave1out`` and influence diagnostics as ``influence`` (Viechtbauer & Cheung
  2010, Res Synth Methods 1:112).
- The test family of R meta's ``metabias`` (classical Egger, Thompson-Sharp, Peters, Harbord), from
  ``meta.stats.smallstudy``, reported next to the two tests above in ``BiasReport.tests``.

The intercept-only models are ``pooling.pool_batch`` fits (all leave-one-out fits in one batch).
Where metafor stops with an error, these functions raise ``ModelError``; ``bias_report`` turns
such errors into missing values and a warning.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from itertools import accumulate

import numpy as np

from meta.stats import smallstudy
from meta.stats.distributions import chi2_cdf, norm_sf
from meta.stats.options import METHOD_NAMES, RATIO_MEASURES, PoolOptions
from meta.stats.pooling import pool_batch
from meta.stats.regression import ModelError, fit_regression
from meta.stats.results import PoolResult, fmt_number, fmt_p, json_value
from meta.stats.smallstudy import AsymmetryTest, SmallStudyTests, TwoByTwo

_EPS = np.finfo(float).eps
MIN_STUDIES_FOR_TESTS = 10  # Sterne et al. 2011, BMJ 343:d4002; Cochrane Handbook 5.1, section 10.4.3.1
TRIMFILL_MAXITER = 100  # metafor's trimfill(maxiter = 100)


@dataclass(frozen=True)
class EggerTest:
    """Slope test of the regression of yi on sei: ``statistic`` is z, or t on ``df`` = k - 2 (knha).

    ``limit_estimate`` is the intercept, the effect expected as the standard error goes to 0.
    """

    statistic: float
    p: float
    df: int | None
    limit_estimate: float

    def to_dict(self) -> dict:
        return {name: json_value(value) for name, value in asdict(self).items()}


@dataclass(frozen=True)
class RankTest:
    """Kendall's ``tau`` of standardised effects and variances; ``exact`` False where ties forced the
    normal approximation.
    """

    tau: float
    p: float
    exact: bool

    def to_dict(self) -> dict:
        return {name: json_value(value) for name, value in asdict(self).items()}


@dataclass(frozen=True)
class TrimFill:
    """``k0`` studies imputed on ``side`` ("left"/"right"); ``estimate`` of the model with them.

    ``filled_yi`` and ``filled_vi`` are the imputed studies (for a funnel plot).
    """

    k0: int
    side: str
    estimate: float
    filled_yi: tuple[float, ...]
    filled_vi: tuple[float, ...]

    def to_dict(self) -> dict:
        out = {name: json_value(value) for name, value in asdict(self).items()}
        out["filled_yi"], out["filled_vi"] = list(self.filled_yi), list(self.filled_vi)
        return out


@dataclass(frozen=True)
class LeaveOneOut:
    """The pooled ``estimate`` and ``tau2`` with ``study`` left out (NaN where the fit fails)."""

    study: str
    estimate: float
    tau2: float

    def to_dict(self) -> dict:
        return {name: json_value(value) for name, value in asdict(self).items()}


@dataclass(frozen=True)
class Influence:
    """Influence of one study on the model (metafor's ``influence``).

    ``rstudent`` externally standardised residual; ``dffits``; ``cook_d`` Cook's distance;
    ``cov_r`` covariance ratio; ``tau2_del`` and ``qe_del`` tau^2 and Q with the study left out;
    ``hat`` leverage; ``weight`` percent weight; ``dfbetas``; ``influential`` by metafor's rule.
    """

    study: str
    rstudent: float
    dffits: float
    cook_d: float
    cov_r: float
    tau2_del: float
    qe_del: float
    hat: float
    weight: float
    dfbetas: float
    influential: bool

    def to_dict(self) -> dict:
        return {name: json_value(value) for name, value in asdict(self).items()}


@dataclass(frozen=True)
class BiasReport:
    """Small-study tests, trim-and-fill and leave-one-out of one analysis (None where not computable).

    ``tests`` holds the six tests of funnel plot asymmetry (R meta's ``metabias`` family) for k >= 3.
    """

    k: int
    measure: str
    method: str
    ci_method: str
    egger: EggerTest | None
    begg: RankTest | None
    trimfill: TrimFill | None
    leave_one_out: tuple[LeaveOneOut, ...]
    warnings: tuple[str, ...]
    tests: SmallStudyTests | None = None

    def to_dict(self) -> dict:
        """The ``meta bias --json`` object; ``warnings`` appears when there is one (always for k < 10).

        ``tests`` is ``{egger, egger_rma, thompson_sharp, peters, harbord, begg}``, each
        ``{statistic, df, p}`` or null, and ``default_test`` the name of the one R meta's ``metabias``
        uses for this measure."""
        egger, begg, tf = self.egger, self.begg, self.trimfill
        out = {
            "k": self.k,
            "measure": self.measure,
            "method": self.method,
            "egger_z": json_value(egger.statistic) if egger else None,
            "egger_p": json_value(egger.p) if egger else None,
            "begg_tau": json_value(begg.tau) if begg else None,
            "begg_p": json_value(begg.p) if begg else None,
            "trimfill_k0": tf.k0 if tf else None,
            "trimfill_side": tf.side if tf else None,
            "trimfill_estimate": json_value(tf.estimate) if tf else None,
            "leave_one_out": [row.to_dict() for row in self.leave_one_out],
        }
        if self.tests is not None:
            out["tests"] = self.tests.to_dict()
            out["default_test"] = self.tests.default_test
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)




# --- Egger ----------------------------------------------------------------------------------------


def egger_test(yi, vi, options: PoolOptions) -> EggerTest:
    """Egger's test as metafor's ``regtest(model = "rma", predictor = "sei")``."""
    yi, vi = _arrays(yi, vi)
    fit = fit_regression(yi, vi, _sei_design(vi), options.method, options.ci, options.threshold,
                         options.maxiter)
    return EggerTest(fit.zval[1], fit.p[1], fit.df, fit.beta[0])


def _sei_design(vi):
    return np.column_stack([np.ones(vi.size), np.sqrt(vi)])


# --- Begg -----------------------------------------------------------------------------------------


def rank_test(yi, vi) -> RankTest:
    """Begg's rank correlation test as metafor's ``ranktest`` (always fixed-effect weights)."""
    yi, vi = _arrays(yi, vi)
    n = yi.size
    if n < 2:
        raise ModelError("the rank correlation test needs at least 2 studies")
    w = 1.0 / vi
    theta = np.sum(w * yi) / np.sum(w)
    standardised = (yi - theta) / np.sqrt(vi - 1.0 / np.sum(w))
    tau = _kendall_tau_b(standardised, vi)
    if not np.isfinite(tau):
        return RankTest(math.nan, math.nan, False)
    ties = min(np.unique(standardised).size, np.unique(vi).size) < n
    if ties:
        return RankTest(tau, _kendall_normal_p(tau, standardised, vi), False)
    return RankTest(tau, _kendall_exact_p(tau, n), True)


def _kendall_tau_b(x, y) -> float:
    """Kendall's tau-b, as R's ``cor(method = "kendall")``."""
    upper = np.triu_indices(x.size, 1)
    sx = np.sign(x[:, None] - x[None, :])[upper]
    sy = np.sign(y[:, None] - y[None, :])[upper]
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(sx * sy) / (np.sqrt(np.sum(sx**2)) * np.sqrt(np.sum(sy**2))))


def _kendall_exact_p(tau, n) -> float:
    """Two-sided exact p-value of Kendall's statistic as R's ``cor.test`` (no ties)."""
    q = round((tau + 1) * n * (n - 1) / 4)
    if q > n * (n - 1) / 4:
        p = 1.0 - _kendall_cdf(q - 1, n)
    else:
        p = _kendall_cdf(q, n)
    return min(2.0 * p, 1.0)


def _kendall_cdf(q: int, n: int) -> float:
    """P(at most q discordant pairs) among n! equally likely orderings, in exact integers.

    The counts of permutations by number of inversions (Mahonian numbers) follow
    c_n(j) = sum_{i < n} c_{n-1}(j - i); R's ``ckendall`` does the same recursion in doubles.
    """
    if q < 0:
        return 0.0
    if q >= n * (n - 1) // 2:
        return 1.0
    counts = [1] + [0] * q
    for m in range(2, n + 1):
        cumulative = list(accumulate(counts))
        counts = [cumulative[j] - (cumulative[j - m] if j >= m else 0) for j in range(q + 1)]
    return float(Fraction(sum(counts), math.factorial(n)))


def _kendall_normal_p(tau, x, y) -> float:
    """Two-sided p-value from the normal approximation with the tie-corrected variance (R's ``cor.test``)."""
    n = x.size
    tx = _tie_sizes(x)
    ty = _tie_sizes(y)
    t0 = n * (n - 1) / 2
    s = tau * math.sqrt((t0 - np.sum(tx * (tx - 1)) / 2) * (t0 - np.sum(ty * (ty - 1)) / 2))
    var_s = ((n * (n - 1) * (2 * n + 5) - np.sum(tx * (tx - 1) * (2 * tx + 5))
              - np.sum(ty * (ty - 1) * (2 * ty + 5))) / 18
             + np.sum(tx * (tx - 1)) * np.sum(ty * (ty - 1)) / (2 * n * (n - 1))
             + np.sum(tx * (tx - 1) * (tx - 2)) * np.sum(ty * (ty - 1) * (ty - 2)) / (9 * n * (n - 1) * (n - 2)))
    return float(2 * norm_sf(abs(s / math.sqrt(var_s))))


def _tie_sizes(x):
    _, counts = np.unique(x, return_counts=True)
    return counts[counts > 1].astype(float)


# --- trim-and-fill --------------------------------------------------------------------------------


def trim_and_fill(yi, vi, options: PoolOptions) -> TrimFill:
    """Trim-and-fill as metafor's ``trimfill`` default (estimator L0, side from the regression slope)."""
    yi, vi = _arrays(yi, vi)
    k = yi.size
    if k == 1:
        raise ModelError("trim-and-fill needs at least 2 studies")
    slope = fit_regression(yi, vi, _sei_design(vi), options.method, "z", options.threshold,
                           options.maxiter).beta[1]
    side = "right" if slope < 0 else "left"
    sign = -1.0 if side == "right" else 1.0
    order = np.argsort(sign * yi, kind="stable")
    y, v = sign * yi[order], vi[order]
    k0, previous, iterations = 0, -1, 0
    while k0 != previous:
        previous = k0
        iterations += 1
        if iterations > TRIMFILL_MAXITER:
            raise ModelError(f"trim-and-fill did not converge in {TRIMFILL_MAXITER} iterations")
        if k0 >= k:
            raise ModelError("trim-and-fill trimmed every study; no model is left to fit")
        beta = _pooled_estimate(y[:k - k0], v[:k - k0], options)
        centred = y - beta
        # a study equal to the estimate (a one-study fit) has sign 0, not the sign of rounding error
        centred[np.abs(centred) <= 100 * _EPS * np.maximum(np.abs(y), abs(beta))] = 0.0
        ranks = np.empty(k)
        ranks[np.argsort(np.abs(centred), kind="stable")] = np.arange(1, k + 1)
        positive_rank_sum = ranks[centred > 0].sum()
        k0 = max(0, round(float(4 * positive_rank_sum - k * (k + 1)) / (2 * k - 1)))
    filled_yi = sign * (2 * beta - y[k - k0:])
    filled_vi = v[k - k0:]
    estimate = _pooled_estimate(np.concatenate([yi, filled_yi]), np.concatenate([vi, filled_vi]), options)
    return TrimFill(int(k0), side, estimate, tuple(float(x) for x in filled_yi),
                    tuple(float(x) for x in filled_vi))


def _pooled_estimate(yi, vi, options: PoolOptions) -> float:
    fit = pool_batch(yi, vi, np.array([yi.size]), replace(options, qprofile=False))
    if not fit.converged[0] or not np.isfinite(fit.estimate[0]):
        raise ModelError(f"the {options.method} model of {yi.size} studies could not be fitted")
    return float(fit.estimate[0])


# --- leave-one-out and influence -----------------------------------------------------------------


def _deleted_fits(yi, vi, options: PoolOptions):
    """All k fits with one study left out, in one batch; NaN where metafor's fit would fail."""
    k = yi.size
    if k == 1:
        raise ModelError("leaving one study out needs at least 2 studies")
    index = np.array([[j for j in range(k) if j != i] for i in range(k)])
    Y, V = yi[index], vi[index]
    fit = pool_batch(Y.ravel(), V.ravel(), np.full(k, k - 1), replace(options, qprofile=False))
    failed = ~fit.converged | ~np.isfinite(fit.estimate)
    out = {name: np.where(failed, np.nan, getattr(fit, name)) for name in ("estimate", "se", "tau2", "q")}
    return Y, V, out


def leave_one_out(studies, yi, vi, options: PoolOptions) -> tuple[LeaveOneOut, ...]:
    """Pooled estimate and tau^2 with each study left out in turn, as metafor's ``leave1out``."""
    yi, vi = _arrays(yi, vi)
    _, _, fits = _deleted_fits(yi, vi, options)
    return tuple(LeaveOneOut(str(study), float(b), float(t))
                 for study, b, t in zip(studies, fits["estimate"], fits["tau2"]))


def influence(studies, yi, vi, options: PoolOptions) -> tuple[Influence, ...]:
    """Case-deletion diagnostics of the intercept-only model, as metafor's ``influence.rma.uni``."""
    yi, vi = _arrays(yi, vi)
    k = yi.size
    opts = replace(options, qprofile=False)
    full = pool_batch(yi, vi, np.array([k]), opts)
    beta, vb = full.estimate[0], full.se[0] ** 2
    w = 1.0 / (vi + full.tau2[0])
    hat = w / w.sum()
    hat[hat > 1 - 10 * _EPS] = 1.0
    Y, V, dele = _deleted_fits(yi, vi, opts)
    b_del, tau2_del = dele["estimate"], dele["tau2"]
    s2w = np.ones(k)
    if options.ci == "knha" and k - 1 > 1:
        w_del = 1.0 / (V + tau2_del[:, None])
        rss = np.sum(w_del * (Y - b_del[:, None]) ** 2, axis=1)
        s2w = np.where(rss <= _EPS, 0.0, rss / (k - 2))
    resid = yi - b_del
    resid[np.abs(resid) < 100 * _EPS] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rstudent = resid / np.sqrt(vi * s2w + dele["se"] ** 2 + tau2_del * s2w)
        dffits = (beta - b_del) / np.sqrt(s2w * hat * (tau2_del + vi))
        vb_del = 1.0 / np.sum(1.0 / (vi[None, :] + tau2_del[:, None]), axis=1)
        dfbetas = (beta - b_del) / np.sqrt(s2w * vb_del)
        cook = (beta - b_del) ** 2 / vb
        cov_r = dele["se"] ** 2 / vb
    influential = ((np.abs(dffits) > 3 * math.sqrt(1 / (k - 1))) | (chi2_cdf(cook, 1) > 0.5)
                   | (hat > 3 / k) | (np.abs(dfbetas) > 1))
    return tuple(
        Influence(str(studies[i]), float(rstudent[i]), float(dffits[i]), float(cook[i]), float(cov_r[i]),
                  float(tau2_del[i]), float(dele["q"][i]), float(hat[i]), float(full.weights[0][i]),
                  float(dfbetas[i]), bool(influential[i]))
        for i in range(k))


def _arrays(yi, vi):
    return np.asarray(yi, dtype=float), np.asarray(vi, dtype=float)


# --- one analysis ---------------------------------------------------------------------------------


def bias_report(result: PoolResult, options: PoolOptions, cells: TwoByTwo | None = None) -> BiasReport:
    """Every test of a pooled analysis; a test metafor cannot compute is None, with a warning.

    ``cells`` are the studies' 2x2 tables in the order of ``result.yi`` (None unless every study is a
    2x2 table): Peters' and Harbord's tests need them and are None without them.
    """
    yi, vi = np.array(result.yi), np.array(result.vi)
    warnings = list(result.warnings)
    if result.k < MIN_STUDIES_FOR_TESTS:
        warnings.append(f"k = {result.k} < {MIN_STUDIES_FOR_TESTS}: tests for funnel plot asymmetry are too "
                        "weak to tell chance from real asymmetry (Sterne et al. 2011; Cochrane Handbook 5.1, section 10.4.3.1)")

    def attempt(name, compute):
        try:
            return compute()
        except ModelError as error:
            warnings.append(f"{name} not computed: {error}")
            return None

    egger = attempt("Egger's test", lambda: egger_test(yi, vi, options))
    begg = attempt("Begg's test", lambda: rank_test(yi, vi))
    trimfill = attempt("trim-and-fill", lambda: trim_and_fill(yi, vi, options))
    loo = attempt("leave-one-out", lambda: leave_one_out(result.labels, yi, vi, options)) or ()
    tests = _test_family(result.measure, yi, vi, options, cells, egger, begg, attempt)
    return BiasReport(result.k, result.measure, options.method, options.ci, egger, begg, trimfill,
                      loo, tuple(warnings), tests)


def _test_family(measure, yi, vi, options, cells, egger, begg, attempt) -> SmallStudyTests:
    """The six tests of ``BiasReport.tests``; all None below 3 studies (metabias tests nothing there)."""
    binary = cells is not None
    default = smallstudy.default_test(measure, binary)
    if yi.size < smallstudy.MIN_STUDIES:
        return SmallStudyTests(None, None, None, None, None, None, default)
    return SmallStudyTests(
        egger=attempt("Egger's classical test", lambda: smallstudy.egger_test(yi, vi)),
        egger_rma=AsymmetryTest(egger.statistic, egger.df, egger.p) if egger else None,
        thompson_sharp=attempt("Thompson-Sharp test", lambda: smallstudy.thompson_sharp_test(yi, vi, options)),
        peters=attempt("Peters' test", lambda: smallstudy.peters_test(yi, cells)) if binary else None,
        harbord=attempt("Harbord's test", lambda: smallstudy.harbord_test(cells, measure)) if binary else None,
        begg=AsymmetryTest(begg.tau, None, begg.p) if begg else None,
        default_test=default)


def render_bias_text(report: BiasReport) -> str:
    """A readable summary; the asymmetry tests are shown only for k >= 10."""
    r = report
    model = "fixed-effect model" if r.method == "FE" else (
        f"random-effects model, tau^2 estimator {r.method} ({METHOD_NAMES[r.method]})")
    test = "Knapp-Hartung t" if r.ci_method == "knha" else "z"
    lines = [f"Small-study effects and sensitivity (k = {r.k}; {model}; {test} tests)", "",
             f"Tests for funnel plot asymmetry are shown only for k >= {MIN_STUDIES_FOR_TESTS}, as the "
             "Cochrane Handbook advises (5.1, section 10.4.3.1).", ""]
    if r.k >= MIN_STUDIES_FOR_TESTS:
        lines += _test_lines(r) + [""]
    else:
        lines += [f"k = {r.k}: not shown (meta bias --json gives them with a warning).", ""]
    lines.append("Leave-one-out (pooled estimate and tau^2 with the study left out):")
    width = max([len(row.study) for row in r.leave_one_out] + [5])
    for row in r.leave_one_out:
        lines.append(f"  {row.study:<{width}}  {fmt_number(row.estimate)}{_natural(r, row.estimate)}  tau^2 = {fmt_number(row.tau2)}")
    for warning in r.warnings:
        lines.append(f"Warning: {warning}")
    return "\n".join(lines) + "\n"


def _test_lines(r: BiasReport) -> list[str]:
    lines = []
    if r.egger:
        stat = "z" if r.egger.df is None else f"t(df = {r.egger.df})"
        lines.append(f"Egger's regression test (effect on its standard error): {stat} = {r.egger.statistic:.4f}, "
                     f"p = {fmt_p(r.egger.p)}; limit estimate (SE -> 0) {fmt_number(r.egger.limit_estimate)}"
                     f"{_natural(r, r.egger.limit_estimate)}")
    if r.begg:
        kind = "exact" if r.begg.exact else "normal approximation: ties"
        lines.append(f"Begg's rank correlation test: Kendall's tau = {fmt_number(r.begg.tau)}, p = {fmt_p(r.begg.p)} ({kind})")
    lines += _family_lines(r.tests)
    if r.trimfill:
        tf = r.trimfill
        lines.append(f"Trim-and-fill (L0): {tf.k0} {'study' if tf.k0 == 1 else 'studies'} imputed on the {tf.side}; "
                     f"estimate with them {fmt_number(tf.estimate)}{_natural(r, tf.estimate)}")
    return lines


def _family_lines(tests: SmallStudyTests | None) -> list[str]:
    """The regression tests of R meta's metabias, one line each; the one metabias uses by default marked."""
    if tests is None:
        return []
    labels = {"egger": "Egger (classical, weighted least squares)", "thompson_sharp": "Thompson-Sharp",
              "peters": "Peters", "harbord": "Harbord"}
    lines = ["Regression tests as R meta's metabias (t on k - 2 df):"]
    for name, label in labels.items():
        test = getattr(tests, name)
        if test is not None:
            default = "  [metabias default]" if name == tests.default_test else ""
            lines.append(f"  {label}: t = {test.statistic:.4f}, p = {fmt_p(test.p)}{default}")
    return lines


def _natural(r: BiasReport, value: float) -> str:
    return f" ({r.measure} {math.exp(value):.4f})" if r.measure in RATIO_MEASURES and value == value else ""



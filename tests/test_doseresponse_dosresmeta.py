"""The dose-response engine against the printed examples of R's dosresmeta help pages.

Data: ../shared/reference-data/dose-response/dosresmeta-examples/ (dosresmeta's data/*.rda as CSV).
Expected numbers are copied from the help pages of GitHub alecri/dosresmeta, docs/reference/*.html
at commit dcc47a98d2a7181b0d6531893017c066f38b23c7 (pkgdown build of dosresmeta 2.1.1); the page is
named beside each value. Printed values are rounded, so each is compared to half a unit of its last
printed digit (``_printed``). Hamling's counts are printed from Nelder-Mead (optim); the engine repeats
R's Nelder-Mead step for step, so they are compared to the printed digits too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from meta.stats.distributions import norm_isf
from meta.stats.doseresponse import (
    DoseResponseError,
    check_dose_arrays,
    fit_doseresponse,
)
from meta.stats.pseudocounts import covariance_from_counts, pseudo_counts

DATA = Path(__file__).resolve().parents[1].parent / "shared/reference-data/dose-response/dosresmeta-examples"
pd = pytest.importorskip("pandas")
pytestmark = pytest.mark.skipif(not DATA.exists(), reason="../shared reference data not present")


def _printed(actual, printed, digits, slack=0.0):
    """|actual - printed| <= half a unit in the last printed decimal place (+ ``slack`` relative)."""
    printed = np.asarray(printed, dtype=float)
    err = np.abs(np.asarray(actual, dtype=float) - printed)
    assert np.all(err <= 0.5 * 10.0**-digits + slack * np.abs(printed) + 1e-12), (actual, printed)


# mvmeta stops its BFGS at reltol 1.5e-8 on the log-likelihood, so its REML optimum is off the exact
# one: the 7-decimal predictions of the quadratic REML fit differ from the engine's converged optimum
# (a Newton step on it changes nothing) by up to 3.3e-7 relative (the upper limit 5.7897601 at dose
# 50). Values printed to 7 decimals from that fit get this relative slack.
MVMETA_SLACK = 5e-7


def _cvd():
    return pd.read_csv(DATA / "alcohol_cvd.csv")


def _study(d, sid):
    g = d[d.id == sid]
    v = (g.se**2).fillna(0).to_numpy()
    return g.logrr.to_numpy(), v, g.cases.to_numpy(), g.n.to_numpy(), g.type.iloc[0], v == 0


# grl.html, "Restructuring the previous results in a matrix": column A for studies 1..6
GRL_A = [125.045754, 67.121348, 68.861059, 18.649722, 17.321957, 76.326336, 88.590929, 25.247951,
         11.834726, 81.774216, 46.587219, 15.641699, 5.996615, 75.746492, 35.156220, 39.598921,
         11.498375, 153.244004, 230.458403, 41.209336, 40.088318, 343.064318, 99.685219, 13.149854,
         9.100567]
# hamling.html, same layout: columns A and N
HAMLING_A = [77.224016, 42.863757, 39.595879, 14.048644, 11.379162, 52.936594, 57.793169, 18.561968,
             9.998022, 41.767484, 22.346167, 10.101682, 2.800649, 41.049928, 19.560563, 25.512473,
             7.685215, 83.911375, 112.603350, 22.275337, 15.848900, 194.789854, 51.584127, 8.465262,
             5.940076]
HAMLING_N = [256.720533, 167.402324, 131.640213, 33.256951, 22.399697, 177.747117, 267.425543,
             147.280311, 53.651163, 105.948046, 83.663073, 37.333962, 5.126876, 113.431784, 65.547809,
             52.449734, 26.248314, 242.219498, 492.488014, 121.321192, 49.727836, 711.658884, 235.576313,
             31.239980, 28.184271]
# covar.logrr.html, study 1 (id = 1), Greenland & Longnecker
COVAR_STUDY1 = [[0.04987985, 0.01875906, 0.01678737, 0.01780975],
                [0.01875906, 0.05463996, 0.01736485, 0.01842239],
                [0.01678737, 0.01736485, 0.14176254, 0.01648609],
                [0.01780975, 0.01842239, 0.01648609, 0.19714011]]
# covar.logrr.html, study 6
COVAR_STUDY6 = [[0.024519546, 0.004898219, 0.004718234],
                [0.004898219, 0.123263570, 0.004371731],
                [0.004718234, 0.004371731, 0.173481760]]


def test_grl_pseudo_cases_all_studies():
    d = _cvd()
    got = np.concatenate([pseudo_counts(*_study(d, s), "gl")[0] for s in range(1, 7)])
    _printed(got, GRL_A, 6)


def test_hamling_pseudo_counts_all_studies():
    d = _cvd()
    counts = [pseudo_counts(*_study(d, s), "hamling") for s in range(1, 7)]
    a = np.concatenate([c[0] for c in counts])
    n = np.concatenate([c[1] for c in counts])
    _printed(a, HAMLING_A, 6)
    _printed(n, HAMLING_N, 6)


def test_hamling_2017_variant_differs_from_printed():
    # the other stored version (ratios over non-referent categories) does not reproduce hamling.html
    a, _ = pseudo_counts(*_study(_cvd(), 1), "hamling-2017")
    assert abs(a[0] - HAMLING_A[0]) / HAMLING_A[0] > 1e-3


@pytest.mark.parametrize("sid, printed", [(1, COVAR_STUDY1), (6, COVAR_STUDY6)])
def test_covar_logrr_gl(sid, printed):
    y, v, cases, n, type_, ref = _study(_cvd(), sid)
    a, nn = pseudo_counts(y, v, cases, n, type_, ref, "gl")
    digits = 8 if sid == 1 else 9
    _printed(covariance_from_counts(v, a, nn, type_, ref), printed, digits)


def _cc_ex():
    d = pd.read_csv(DATA / "cc_ex.csv")
    # dosresmeta(lb = lb, ub = ub): v = ((log(ub) - log(lb)) / (2 qnorm(.975)))^2
    se = (np.log(d.ub) - np.log(d.lb)) / (2 * norm_isf(0.025))
    se[d.logrr == 0] = np.nan
    return d, se


def test_single_case_control_study_linear():
    # dosresmeta.html, first example: One-stage fixed-effects; dose 0.0454 (0.0207), logLik 0.7835;
    # predict(mod1, delta = 1, expo = TRUE): 1.046477 1.004941 1.089729
    d, se = _cc_ex()
    fit = fit_doseresponse(np.ones(len(d)), d.dose, d.logrr, se, d.case, d.n, "cc",
                           model="linear", covariance="gl", predict=[1.0])
    assert fit.method == "FE" and fit.proc == "1stage" and fit.k == 1
    _printed(fit.coefficients[0], 0.0454, 4)
    _printed(np.sqrt(fit.vcov[0, 0]), 0.0207, 4)
    _printed(fit.loglik, 0.7835, 4)
    p = fit.predictions
    _printed([p.estimate[0], p.ci_lower[0], p.ci_upper[0]], [1.046477, 1.004941, 1.089729], 6)


def _cvd_fit(model, **kw):
    d = _cvd()
    return fit_doseresponse(d.id, d.dose, d.logrr, d.se, d.cases, d.n, d.type, model=model,
                            covariance="gl", **kw)


def test_alcohol_cvd_linear_reml():
    # dosresmeta.html, "Linear trend": -0.0044 (0.0059); Std. Dev 0.0100; Q = 14.1464 (df = 5),
    # p-value = 0.0147; I-square 64.7%; logLik 14.0341. predict(lin, delta = 1): 0.9956441 0.9842178 1.007203
    fit = _cvd_fit("linear")
    assert fit.proc == "2stage" and fit.method == "REML"
    _printed(fit.coefficients[0], -0.0044, 4)
    _printed(np.sqrt(fit.vcov[0, 0]), 0.0059, 4)
    _printed(np.sqrt(fit.between_study[0, 0]), 0.0100, 4)
    _printed(fit.q, 14.1464, 4)
    assert fit.q_df == 5
    _printed(fit.q_p, 0.0147, 4)
    _printed(fit.i2, 64.7, 1)
    _printed(fit.loglik, 14.0341, 4)
    p = fit.predict([1.0])
    _printed([p.estimate[0], p.ci_lower[0]], [0.9956441, 0.9842178], 7)
    _printed(p.ci_upper[0], 1.007203, 6)
    # predict.dosresmeta.html: predict(lin, delta = 12, expo = TRUE): 0.9489635 0.8262176 1.089945
    p12 = fit.predict([12.0])
    _printed([p12.estimate[0], p12.ci_lower[0]], [0.9489635, 0.8262176], 7)
    _printed(p12.ci_upper[0], 1.089945, 6)


def test_alcohol_cvd_quadratic_reml():
    # dosresmeta.html, "Non-linear (quadratic) trend": dose -0.0302 (0.0132), I(dose^2) 0.0008 (0.0005);
    # Std. Dev 0.0209 and 0.0008, Corr -0.9063; Q = 35.1177 (df = 10), p 0.0001; I-square 71.5%;
    # logLik 34.6967. waldtest.html: X2 = 6.4, df = 2, P = 0.041 (all coefficients)
    fit = _cvd_fit("quadratic")
    _printed(fit.coefficients, [-0.0302, 0.0008], 4)
    _printed(np.sqrt(np.diag(fit.vcov)), [0.0132, 0.0005], 4)
    psi = fit.between_study
    _printed(np.sqrt(np.diag(psi)), [0.0209, 0.0008], 4)
    _printed(psi[0, 1] / np.sqrt(psi[0, 0] * psi[1, 1]), -0.9063, 4)
    _printed(fit.q, 35.1177, 4)
    assert fit.q_df == 10
    _printed(fit.i2, 71.5, 1)
    _printed(fit.loglik, 34.6967, 4)
    b = fit.coefficients
    _printed(float(b @ np.linalg.solve(fit.vcov, b)), 6.4, 1)


def test_alcohol_cvd_quadratic_predictions():
    # predict.dosresmeta.html: predict(quadr, newdata = data.frame(dose = seq(0, 50, 5)), expo = TRUE)
    pred = [1.0, 0.8760060, 0.7967691, 0.7524475, 0.7377992, 0.7511359, 0.7939938, 0.8714330,
            0.9930456, 1.1749589, 1.4434258]
    lb = [1.0, 0.7858965, 0.6660084, 0.6032001, 0.5733641, 0.5550122, 0.5309690, 0.4960811,
          0.4533923, 0.4069893, 0.3598557]
    ub = [1.0, 0.9764474, 0.9532028, 0.9386226, 0.9493928, 1.0165634, 1.1873125, 1.5307888,
          2.1750248, 3.3920508, 5.7897601]
    fit = _cvd_fit("quadratic", predict=np.arange(0, 51, 5), reference=0.0)
    p = fit.predictions
    _printed(p.estimate, pred, 7, MVMETA_SLACK)
    _printed(p.ci_lower, lb, 7, MVMETA_SLACK)
    _printed(p.ci_upper, ub, 7, MVMETA_SLACK)
    out = fit.to_dict()
    assert [r["dose"] for r in out["predictions"]] == list(np.arange(0, 51, 5).astype(float))


def test_contract_keys():
    out = _cvd_fit("quadratic").to_dict()
    assert list(out) == ["k", "model", "knots", "method", "covariance", "covariance_used",
                         "coefficients", "vcov", "between_study", "q", "q_df", "q_p", "i2",
                         "nonlinearity", "predictions", "studies"]
    assert list(out["studies"][0]) == ["study", "covariance", "pseudo_cases", "pseudo_n", "coefficients"]
    assert set(out["nonlinearity"]) == {"chi2", "df", "p"}


def test_check_dose_arrays_reports_every_problem():
    study = ["a", "a", "a", "b", "b", "b"]
    dose = [0, 1, 1, 0, 2, 3]
    logrr = [0, 0.1, 0.2, 0, 0.1, 0.2]
    se = [np.nan, 0.1, 0.1, 0.1, 0.1, 0.1]  # b has no referent
    cases = [10, 20, 30, 10, 20, 30]
    n = [100, 10, 100, 100, 100, 100]  # cases > n in a, row 1
    problems = check_dose_arrays(study, dose, logrr, se, cases, n, "ci", covariance="gl", model="linear")
    kinds = {(p[0], p[1], p[2]) for p in problems}
    assert ("a", 2, "dose") in kinds and ("a", 1, "cases") in kinds and ("b", -1, "se") in kinds
    with pytest.raises(DoseResponseError) as err:
        fit_doseresponse(study, dose, logrr, se, cases, n, "ci", model="linear", covariance="gl")
    assert err.value.study == "a" and err.value.column in {"dose", "cases"}


def test_knots_outside_range_and_missing_counts():
    d = _cvd()
    with pytest.raises(DoseResponseError) as err:
        fit_doseresponse(d.id, d.dose, d.logrr, d.se, d.cases, d.n, d.type, knots=[1, 10, 500])
    assert err.value.column == "knots"
    with pytest.raises(DoseResponseError) as err:
        fit_doseresponse(d.id, d.dose, d.logrr, d.se, None, d.n, d.type, model="linear")
    assert err.value.column == "cases"
    fit = fit_doseresponse(d.id, d.dose, d.logrr, d.se, None, None, None, model="linear",
                           covariance="independent")
    assert fit.covariance_used == "independent" and fit.studies[0].pseudo_cases is None


def test_failing_study_is_named_and_fallback_refits_with_gl():
    d = pd.read_csv(DATA / "alcohol_crc.csv")
    # person-time of study "atm" / 1000: its rates exceed 1 per unit, Hamling's pseudo-cases go
    # negative, while Greenland-Longnecker (person-time fixed) still works
    d.loc[d.id == "atm", "peryears"] /= 1000
    args = (d.id, d.dose, d.logrr, d.se, d.cases, d.peryears, d.type)
    with pytest.raises(DoseResponseError) as err:
        fit_doseresponse(*args, model="linear", covariance="hamling")
    assert err.value.study == "atm"
    fit = fit_doseresponse(*args, model="linear", covariance="hamling", fallback="gl")
    assert fit.covariance == "hamling" and fit.covariance_used == "gl"
    assert fit.to_dict()["covariance_used"] == "gl"


def test_one_stage_equals_two_stage_and_takes_short_studies():
    # b_i is sufficient for (beta, Psi) in study i, so the stacked (1-stage) REML optimum is the 2-stage one
    two = _cvd_fit("quadratic")
    one = _cvd_fit("quadratic", proc="1stage")
    assert two.proc == "2stage" and one.proc == "1stage"
    np.testing.assert_allclose(one.coefficients, two.coefficients, rtol=1e-6)
    np.testing.assert_allclose(one.vcov, two.vcov, rtol=1e-5)
    # a study with one non-referent row cannot give 2 first-stage coefficients: auto switches to 1-stage
    d = _cvd()
    d = d[~((d.id == 2) & (d.dose > 20))]
    fit = fit_doseresponse(d.id, d.dose, d.logrr, d.se, d.cases, d.n, d.type, model="quadratic", covariance="gl")
    assert fit.proc == "1stage" and fit.studies[1].coefficients is None
    assert fit.q_df == int((d.se.notna()).sum()) - 2
    with pytest.raises(DoseResponseError) as err:
        fit_doseresponse(d.id, d.dose, d.logrr, d.se, d.cases, d.n, d.type, model="quadratic",
                         covariance="gl", proc="2stage")
    assert err.value.study == 2

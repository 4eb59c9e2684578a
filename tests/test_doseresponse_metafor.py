"""The dose-response engine against R: metafor's rma.mv for the second stage, Hmisc for the spline basis.

Reference values: reference/make_doseresponse_reference.R (metafor 3.8.1, Hmisc 4.8.0, R 4.2.2; see
reference/doseresponse/VERSIONS) fitted the engine's first-stage b_i and V_i (reference/doseresponse/inputs/, written
by reference/doseresponse/make_inputs.py) with rma.mv(yi, V, mods = ~ factor(coef) - 1, random = ~ factor(coef) |
study, struct = "UN"), mvmeta's two-stage model, by REML, ML and fixed effects; and evaluated
Hmisc::rcspline.eval(x, knots, inclx = TRUE) with knots from R's quantile().

Tolerances. Q and the fixed-effect fit involve no optimisation: 1e-10. REML/ML: the same likelihood is maximised by
different optimisers (metafor: nlminb; the engine: mvmeta's path then BFGS to a 1e-10 gradient), so the maximised
log-likelihoods agree to 1e-9 relative and the engine's is never lower; coefficients agree to 1e-6 relative (plus
1e-6 standard errors for coefficients near 0) and their covariances to 1e-5, except where the likelihood is flat around its maximum (FLAT below: metafor stops earlier, the
engine's log-likelihood is equal or higher, by up to 3.8e-9 relative), where 1e-4 holds (largest seen: 5.6e-5 on a
coefficient, kidney ML).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

from meta.stats.doseresponse import fit_doseresponse
from meta.stats.splines import quantile_type7, rcs_basis

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "reference/doseresponse"
SHARED = ROOT.parent / "shared/reference-data/dose-response"
pytestmark = pytest.mark.skipif(not SHARED.exists(), reason="../shared reference data not present")

FLAT = {  # (case, method): measured relative difference of the coefficients from metafor
    ("garcia_kidney-cancer-fatal-and-non-fatal", "REML"): 5.5e-6,
    ("garcia_kidney-cancer-fatal-and-non-fatal", "ML"): 5.6e-5,
    ("garcia_esophageal-cancer-fatal-and-non-fatal", "ML"): 3.1e-5,
    ("garcia_prostate-cancer-fatal-and-non-fatal", "ML"): 4.7e-6,
    ("garcia_breast-cancer-fatal-and-non-fatal", "ML"): 2.1e-6,
    ("garcia_colon-cancer-fatal-and-non-fatal", "ML"): 1.2e-6,
}


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _reference():
    out = {}
    for r in _csv(REF / "metafor_secondstage.csv"):
        value = float(r["value"]) if r["value"] else np.nan
        out.setdefault((r["case"], r["method"]), {}).setdefault(r["quantity"], {})[(int(r["i"]), int(r["j"]))] = value
    return out


def _cases():
    sys.path.insert(0, str(REF))
    sys.path.insert(0, str(ROOT / "tests"))
    import make_inputs

    return [*make_inputs.example_cases(), *make_inputs.garcia_cases()]


REFERENCE = _reference() if (REF / "metafor_secondstage.csv").exists() else {}
CASES = _cases() if SHARED.exists() else []


def _vector(d, p):
    return np.array([d[(i + 1, 0)] for i in range(p)])


def _matrix(d, p):
    return np.array([[d[(i + 1, j + 1)] for j in range(p)] for i in range(p)])


def test_reference_grid_complete():
    assert len(CASES) == 26
    assert {(name, m) for name, _, _ in CASES for m in ("REML", "ML", "FE")} == set(REFERENCE)


@pytest.mark.parametrize("method", ["REML", "ML", "FE"])
@pytest.mark.parametrize("name, args, options", CASES, ids=[c[0] for c in CASES])
def test_second_stage_matches_metafor(name, args, options, method):
    ref = REFERENCE[(name, method)]
    fit = fit_doseresponse(*args, method=method, **options)
    p = fit.coefficients.size
    flat = (name, method) in FLAT
    se = np.sqrt(np.diag(fit.vcov))
    np.testing.assert_allclose(fit.coefficients, _vector(ref["beta"], p), rtol=1e-4 if flat else 1e-6,
                               atol=1e-6 * se.min())
    np.testing.assert_allclose(fit.vcov, _matrix(ref["vcov"], p), rtol=1e-4 if flat else 1e-5)
    assert fit.q == pytest.approx(ref["QE"][(0, 0)], rel=1e-10)
    assert fit.q_df == ref["QE_df"][(0, 0)]
    assert fit.q_p == pytest.approx(ref["QE_p"][(0, 0)], rel=1e-8, abs=1e-300)
    if method != "FE":
        r_ll = ref["loglik"][(0, 0)]
        assert fit.loglik == pytest.approx(r_ll, rel=1e-8 if flat else 1e-9)
        assert fit.loglik >= r_ll - 1e-9 * abs(r_ll)
    if p > 1:
        assert fit.nonlinearity["df"] == ref["wald_df"][(0, 0)]
        assert fit.nonlinearity["chi2"] == pytest.approx(ref["wald_chi2"][(0, 0)], rel=2e-4 if flat else 1e-5)


def test_quantiles_are_r_type7():
    import pandas as pd

    crc = pd.read_csv(SHARED / "dosresmeta-examples/alcohol_crc.csv")
    bladder = pd.read_csv(SHARED / "garcia2023/main-bladder-cancer-fatal-and-non-fatal.csv")
    doses = {"crc_10_50_90": crc.dose, "crc_05_35_65_95": crc.dose, "bladder_garcia": bladder.dose}
    for r in _csv(REF / "r_quantiles.csv"):
        got = quantile_type7(doses[r["knotset"]], float(r["prob"]))
        assert got == pytest.approx(float(r["knot"]), rel=1e-14, abs=1e-14)


def test_spline_basis_is_hmisc_rcspline_eval():
    knots = {}
    for r in _csv(REF / "r_quantiles.csv"):
        knots.setdefault(r["knotset"], []).append(float(r["knot"]))
    rows = _csv(REF / "hmisc_rcspline.csv")
    for name, k in knots.items():
        mine = [r for r in rows if r["knotset"] == name]
        x = np.array([float(r["x"]) for r in mine])
        col = np.array([int(r["col"]) for r in mine]) - 1
        want = np.array([float(r["value"]) for r in mine])
        got = rcs_basis(x, k)[np.arange(x.size), col]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

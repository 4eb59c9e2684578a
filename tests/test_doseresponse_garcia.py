"""The dose-response engine on the 19 cancer curves of Garcia et al. 2023 (Br J Sports Med,
doi 10.1136/bjsports-2022-105669), against what their repository published.

Inputs: ../shared/reference-data/dose-response/garcia2023/main-<outcome>.csv (the repository's model-ready data at
commit 530ab25). Published values: reference/garcia2023/*.csv, each with a header naming repository, path and commit.

How the repository fits a curve (script/analysis.R and script/all-functions.R, metaAnalysis and get_last_knot):
personyrs rounded; n = personyrs for HRs, totalpersons otherwise; knots at quantile(dose, c(0, lk/2, lk)) where lk is
get_last_knot's ecdf value of the largest dose below the top 25% of person-years; dosresmeta(logrr ~ rcs(dose, k),
covariance = "h", proc = "2stage" (default), method = "reml") with dosresmeta 2.0.1 from CRAN, whose Hamling variant is
``hamling-2017`` here; on an error or warning the whole fit is redone with covariance "gl"; predict() on
seq(min(dose), max(dose), length.out = 1000) with the first dose (0) as reference.

Findings (see also the module docstrings of meta.stats.doseresponse and pseudocounts):
- ``optimum="mvmeta"`` (mvmeta's IGLS start and R's BFGS repeated step for step, stopping where it stops) reproduces the
  published curves to 1e-9 relative (observed <= 1e-9; most 1e-14) for every curve fitted with Hamling's covariance.
- lung-cancer-fatal-and-non-fatal is the one curve where Hamling fails (study 11: negative pseudo-counts) and the
  repository fell back to Greenland & Longnecker; there the engine agrees to 4.3e-5 only (Q agrees to the 3 printed
  decimals). The REML surface has a single maximum there, so the difference comes from the within-study covariances;
  dosresmeta 2.0.1's ``grl`` could not be read in the store (the stored ``R/covariance.R`` versions all have the
  grl that reproduces the 2.1.1 help page to 6 digits), so the cause is not established.
- the default ``optimum="converged"`` climbs to the maximum mvmeta stops short of (optim's reltol 1.5e-8 on a flat
  likelihood): 7.1e-5 relative from the published values for rectum, 5.2e-5 myeloid leukemia, 4.6e-5 head and neck,
  2.3e-5 myeloma, 1.8e-5 gastric cardia, 8.7e-6 prostate, 2.3e-6 esophageal, <= 5e-7 for the others.
- all-cause-cancer-fatal-and-non-fatal: mvmeta's path ends on a local REML maximum (log-likelihood 156.439) although
  a higher one exists (156.521, Psi singular); the published curve is the local one, which ``optimum`` reproduces
  since it follows mvmeta's path.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np
import pytest

from meta.stats.doseresponse import fit_doseresponse
from meta.stats.splines import person_time_knots

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ROOT.parent / "shared/reference-data/dose-response/garcia2023"
PUBLISHED = ROOT / "reference/garcia2023"
pd = pytest.importorskip("pandas")
pytestmark = pytest.mark.skipif(not INPUTS.exists(), reason="../shared reference data not present")

OUTCOMES = sorted(p.name[5:-4] for p in INPUTS.glob("main-*.csv")) if INPUTS.exists() else []
GUIDELINE_DOSES = (4.375, 8.75, 17.5)
FALLBACK_GL = {"lung-cancer-fatal-and-non-fatal"}
GL_FALLBACK_RTOL = 5e-5  # the gl-fallback curve: unexplained difference, see the module docstring
MVMETA_RTOL = 1e-9
CONVERGED_RTOL = 1e-4  # mvmeta's own stopping error: up to 7.1e-5 (rectum), see the module docstring


def _published(name):
    lines = [line for line in (PUBLISHED / name).read_text().splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


def garcia_inputs(outcome):
    """Arrays, knots and prediction grid of one outcome, prepared as the repository's analysis does."""
    d = pd.read_csv(INPUTS / f"main-{outcome}.csv")
    personyrs = np.round(d.personyrs.to_numpy())
    dose = d.dose.to_numpy()
    return {
        "args": (d.id.to_numpy(), dose, d.logrr.to_numpy(), d.se.to_numpy(), d.cases.to_numpy(),
                 np.where(d.effect_measure == "hr", personyrs, d.totalpersons), d.type.to_numpy()),
        "knots": person_time_knots(dose, personyrs),
        "grid": np.linspace(dose.min(), dose.max(), 1000),
    }


@functools.cache
def garcia_fit(outcome, optimum):
    inp = garcia_inputs(outcome)
    return fit_doseresponse(*inp["args"], model="rcs", knots=inp["knots"], covariance="hamling-2017",
                            fallback="gl", lenient=True, optimum=optimum)


def test_nineteen_outcomes():
    assert len(OUTCOMES) == 19


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_last_knot(outcome):
    published = {r["outcome"]: float(r["last_knot"]) for r in _published("published_last_knots.csv")}
    assert garcia_inputs(outcome)["knots"][-1] == pytest.approx(published[outcome], rel=1e-12)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_covariance_used(outcome):
    fit = garcia_fit(outcome, "mvmeta")
    assert fit.proc == "2stage"
    assert fit.covariance_used == ("gl" if outcome in FALLBACK_GL else "hamling-2017")


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_q_and_i2(outcome):
    row = next(r for r in _published("published_tests.csv") if r["outcome"] == outcome)
    fit = garcia_fit(outcome, "mvmeta")
    assert fit.q_df == int(row["q_df"])
    assert abs(fit.q - float(row["q"])) <= 0.0005 + 1e-9
    assert abs(fit.q_p - float(row["q_p"])) <= 0.0005 + 1e-9
    assert abs(fit.i2 - float(row["i2"])) <= 0.05 + 1e-9


@pytest.mark.parametrize("optimum, rtol", [("mvmeta", MVMETA_RTOL), ("converged", CONVERGED_RTOL)])
def test_curves_full_precision(optimum, rtol):
    rows = _published("published_curves.csv")
    worst = {}
    for outcome in sorted({r["outcome"] for r in rows}):
        mine = [r for r in rows if r["outcome"] == outcome]
        pred = garcia_fit(outcome, optimum).predict([float(r["dose"]) for r in mine], reference=0.0)
        got = np.column_stack([pred.estimate, pred.ci_lower, pred.ci_upper])
        want = np.array([[float(r[c]) for c in ("RR", "lower", "upper")] for r in mine])
        worst[outcome] = float(np.max(np.abs(got / want - 1)))
    for outcome, err in worst.items():
        limit = max(rtol, GL_FALLBACK_RTOL) if outcome in FALLBACK_GL else rtol
        assert err <= limit, (outcome, err)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_rounded_table_all_nineteen(outcome):
    """RR and CI at the grid points nearest 4.375, 8.75 and 17.5, rounded to 2 decimals as published."""
    rows = [r for r in _published("published_rr_table.csv") if r["outcome"] == outcome]
    grid = garcia_inputs(outcome)["grid"]
    nearest = [grid[np.argmin(np.abs(grid - d))] for d in GUIDELINE_DOSES]
    pred = garcia_fit(outcome, "mvmeta").predict(nearest, reference=0.0)
    for i, r in enumerate(rows):
        for got, col in ((pred.estimate[i], "RR"), (pred.ci_lower[i], "lower"), (pred.ci_upper[i], "upper")):
            assert abs(got - float(r[col])) <= 0.005 + 1e-9, (outcome, r["dose"], col, got, r[col])

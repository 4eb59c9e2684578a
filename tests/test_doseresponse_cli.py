"""``meta doseresponse`` and ``meta.doseresponse`` on the files as dosresmeta and Garcia et al. 2023 ship them:
the printed values of dosresmeta's help pages (page beside each number), the published curves of the
repository (reference/garcia2023/, header names the source), and bad input with row, column and fix."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import meta
from meta.cli.main import main

from .conftest import ROOT

SHARED = ROOT.parent / "shared" / "reference-data" / "dose-response"
EXAMPLES = SHARED / "dosresmeta-examples"
GARCIA = SHARED / "garcia2023"
pytestmark = pytest.mark.skipif(not SHARED.exists(), reason="../shared reference data not present")
PAPER = ["--covariance", "hamling-2017", "--fallback", "gl", "--knots", "person-time", "--round-person-time",
         "--optimum", "mvmeta"]


def run(*args):
    done = CliRunner().invoke(main, ["doseresponse", *map(str, args)])
    return done


def as_json(*args) -> dict:
    done = run(*args, "--json")
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_linear_trend_of_alcohol_and_cvd_as_dosresmeta_prints_it():
    # dosresmeta.html, "Linear trend": dose -0.0044 (0.0059); Q = 14.1464 (df = 5), p-value = 0.0147; I-square 64.7%
    # predict(lin, delta = 12, expo = TRUE) (predict.dosresmeta.html): 0.9489635 0.8262176 1.089945
    out = as_json(EXAMPLES / "alcohol_cvd.csv", "--model", "linear", "--covariance", "gl", "--predict", "12")
    assert round(out["coefficients"][0], 4) == -0.0044
    assert round(math.sqrt(out["vcov"][0][0]), 4) == 0.0059
    assert (round(out["q"], 4), out["q_df"], round(out["q_p"], 4), round(out["i2"], 1)) == (14.1464, 5, 0.0147, 64.7)
    p = out["predictions"][0]
    assert (p["dose"], round(p["estimate"], 7), round(p["ci_lower"], 7)) == (12, 0.9489635, 0.8262176)
    assert set(out) >= {"k", "model", "knots", "method", "covariance", "covariance_used", "coefficients", "vcov",
                        "between_study", "q", "q_df", "q_p", "i2", "nonlinearity", "predictions", "studies"}
    assert out["studies"][0]["pseudo_cases"] and out["covariance_used"] == "gl"


def test_a_single_case_control_study_without_a_study_column():
    # dosresmeta.html, first example: dose 0.0454 (0.0207); predict(mod1, delta = 1, expo = TRUE): 1.046477 1.004941 1.089729
    out = as_json(EXAMPLES / "cc_ex.csv", "--type", "cc", "--model", "linear", "--covariance", "gl", "--predict", "1")
    assert out["k"] == 1 and out["method"] == "FE"
    assert round(out["coefficients"][0], 4) == 0.0454
    p = out["predictions"][0]
    assert [round(p[k], 6) for k in ("estimate", "ci_lower", "ci_upper")] == [1.046477, 1.004941, 1.089729]


def test_spline_and_its_non_linearity_test_run_from_the_command_line():
    out = as_json(EXAMPLES / "alcohol_crc.csv", "--covariance", "gl")
    assert out["model"] == "rcs" and len(out["knots"]) == 3 and out["nonlinearity"]["df"] == 1
    assert [p["dose"] for p in out["predictions"]] == [4.375, 8.75, 17.5]
    text = run(EXAMPLES / "alcohol_crc.csv", "--covariance", "gl").stdout
    assert "Test of non-linearity" in text and "k = 8 studies" in text


def _published_curves() -> dict[str, list[dict]]:
    lines = [line for line in (ROOT / "reference" / "garcia2023" / "published_curves.csv").read_text().splitlines()
             if not line.startswith("#")]
    curves: dict[str, list[dict]] = {}
    for row in csv.DictReader(lines):
        curves.setdefault(row["outcome"], []).append(row)
    return curves


@pytest.mark.parametrize("outcome", sorted(_published_curves()) if SHARED.exists() else [])
def test_garcia_curves_from_the_repositorys_inputs(outcome):
    """The repository's model-ready file through the CLI with the paper's settings: RR and CI at its grid doses."""
    rows = _published_curves()[outcome]
    doses = ",".join(r["dose"] for r in rows)
    out = as_json(GARCIA / f"main-{outcome}.csv", *PAPER, "--predict", doses)
    for got, want in zip(out["predictions"], rows):
        for ours, theirs in (("estimate", "RR"), ("ci_lower", "lower"), ("ci_upper", "upper")):
            assert got[ours] == pytest.approx(float(want[theirs]), rel=1e-3), (outcome, got["dose"], ours)


def test_library_result_curve_plot_and_repr(tmp_path):
    result = meta.doseresponse(EXAMPLES / "alcohol_crc.csv", covariance="gl")
    assert repr(result).startswith("DoseResponseResult(rcs, k=8, RR at 8.75: ")
    table = result.curve([0, 10, 20])
    assert list(table.columns[:4]) == ["dose", "estimate", "ci_lower", "ci_upper"] and table.estimate[0] == 1.0
    figure = result.plot(tmp_path / "curve.png", marks={8.75: "150 min/week"})
    assert hasattr(figure, "savefig") and (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    frame = pd.read_csv(EXAMPLES / "alcohol_crc.csv")
    assert meta.doseresponse(frame, covariance="gl").to_dict() == result.to_dict()


def bad_sheet(tmp_path: Path, index: int, column: str, value) -> Path:
    """alcohol_crc.csv with one cell changed (``index`` 0-based; the sheet row is index + 1)."""
    frame = pd.read_csv(EXAMPLES / "alcohol_crc.csv").astype(object)
    frame.loc[index, column] = value
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("index, column, value, row, words", [
    (0, "se", 0.2, None, "no referent"),              # study atm's referent given an SE: no referent left
    (1, "se", None, 2, "second referent"),             # a second row without SE
    (2, "cases", None, 3, "cases missing"),
    (1, "dose", "lots", 2, "not a number"),
])
def test_bad_input_names_row_column_and_fix(tmp_path, index, column, value, row, words):
    done = run(bad_sheet(tmp_path, index, column, value), "--covariance", "gl")
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert words in done.stderr and f"column {column}" in done.stderr and "Fix:" in done.stderr
    if row:
        assert f"row {row}," in done.stderr


def test_more_cases_than_people_in_a_case_control_study(tmp_path):
    frame = pd.read_csv(EXAMPLES / "alcohol_cvd.csv")
    frame.loc[1, "cases"] = frame.loc[1, "n"] + 1
    frame.to_csv(tmp_path / "cvd.csv", index=False)
    done = run(tmp_path / "cvd.csv", "--covariance", "gl", "--model", "linear")
    assert done.exit_code == 1 and "row 2, column cases" in done.stderr and "> n" in done.stderr


def test_a_repeated_row_is_refused_and_two_categories_at_one_dose_are_fitted_with_a_warning(tmp_path):
    frame = pd.read_csv(EXAMPLES / "alcohol_crc.csv")
    repeated = pd.concat([frame.iloc[:2], frame.iloc[1:2], frame.iloc[2:]])
    repeated.to_csv(tmp_path / "repeated.csv", index=False)
    done = run(tmp_path / "repeated.csv", "--covariance", "gl")
    assert done.exit_code == 1 and "same result twice" in done.stderr and "row 3" in done.stderr
    twin = frame.copy()
    twin.loc[2, "dose"] = twin.loc[1, "dose"]
    twin.to_csv(tmp_path / "twin.csv", index=False)
    done = run(tmp_path / "twin.csv", "--covariance", "gl")
    assert done.exit_code == 0 and "two categories at dose" in done.stderr


def test_knots_outside_the_doses_and_too_few_doses(tmp_path):
    done = run(EXAMPLES / "alcohol_crc.csv", "--covariance", "gl", "--knots", "1,2,500")
    assert done.exit_code == 1 and "outside the dose range" in done.stderr and "column knots" in done.stderr
    frame = pd.read_csv(EXAMPLES / "alcohol_crc.csv")
    small = frame[frame.id == "atm"].iloc[:2]
    small.to_csv(tmp_path / "small.csv", index=False)
    done = run(tmp_path / "small.csv", "--covariance", "gl", "--model", "quadratic")
    assert done.exit_code == 1 and "distinct doses" in done.stderr


def test_a_study_whose_covariance_fails_is_named_and_the_fallback_refits(tmp_path):
    # person-time / 1000 makes the rates of study "atm" exceed 1: Hamling's pseudo-cases go negative
    frame = pd.read_csv(EXAMPLES / "alcohol_crc.csv")
    frame.loc[frame.id == "atm", "peryears"] /= 1000
    frame.to_csv(tmp_path / "fails.csv", index=False)
    done = run(tmp_path / "fails.csv", "--covariance", "hamling")
    assert done.exit_code == 1 and "atm" in done.stderr and "--fallback gl" in done.stderr
    out = as_json(tmp_path / "fails.csv", "--covariance", "hamling", "--fallback", "gl")
    assert out["covariance"] == "hamling" and out["covariance_used"] == "gl"
    assert any("fallback" in w for w in out["warnings"])

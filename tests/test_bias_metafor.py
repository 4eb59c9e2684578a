"""Small-study tests and sensitivity against metafor reference values (reference/make_bias_reference.R).

The grid: every dataset of reference/datasets x nine tau^2 methods x {z, knha}, plus the first 2 and
3 studies of bcg_rr (where metafor stops for some tests); regtest, ranktest and trimfill in
reference/metafor_bias_reference.csv, leave1out and influence per study in the .json next to it.
Agreement is required to rel 1e-6; where metafor stops with an error we must raise ModelError.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from meta.cli.bias import bias
from meta.sheets.load import check_effect_table, load_sheet
from meta.stats.bias import (
    egger_test,
    influence,
    leave_one_out,
    rank_test,
    trim_and_fill,
)
from meta.stats.effects import compute_effects
from meta.stats.options import CI_METHODS, METHODS, EffectOptions, PoolOptions
from meta.stats.regression import ModelError

from .conftest import REFERENCE

REF = pd.read_csv(REFERENCE / "metafor_bias_reference.csv", keep_default_na=False, dtype=str)
CELLS = json.loads((REFERENCE / "metafor_bias_reference.json").read_text())
DATASETS = sorted(path.stem for path in (REFERENCE / "datasets").glob("*.csv"))
CASES = list(range(len(REF)))
JSON_KEYS = {"egger_z", "egger_p", "begg_tau", "begg_p", "trimfill_k0", "trimfill_side", "trimfill_estimate",
             "leave_one_out", "k", "measure", "method", "tests", "default_test"}


def case_id(i):
    row = REF.iloc[i]
    return "-".join([row["dataset"] + (f"[:{row['rows']}]" if row["rows"] else ""), row["method"], row["ci"]])


def close(ours, theirs, rel=1e-6, abs_=1e-12) -> bool:
    """``theirs`` is metafor's value: a CSV string ('' = NA), a JSON number or None."""
    if theirs in ("", None):
        return ours is None or (isinstance(ours, float) and math.isnan(ours))
    theirs = float(theirs)
    if math.isinf(theirs):
        return ours == theirs
    return math.isclose(float(ours), theirs, rel_tol=rel, abs_tol=abs_)


def inputs(i):
    """Studies, yi, vi and options of reference case i, from the sheet as the toolkit reads it."""
    row = REF.iloc[i]
    extra = dict(item.split("=") for item in row["options"].split(";") if item)
    frame, problems = load_sheet(REFERENCE / "datasets" / f"{row['dataset']}.csv")
    typed, problems = check_effect_table(frame, row["dataset"], row["measure"])
    assert problems == []
    effects = compute_effects(typed, EffectOptions(row["measure"], **extra))
    n = int(row["rows"]) if row["rows"] else effects.k
    assert n == int(row["k"])
    return effects.labels[:n], effects.yi[:n], effects.vi[:n], PoolOptions(method=row["method"], ci=row["ci"])


def cell(i):
    row = REF.iloc[i]
    rows = int(row["rows"]) if row["rows"] else None
    matches = [c for c in CELLS if (c["dataset"], c["rows"], c["method"], c["ci"])
               == (row["dataset"], rows, row["method"], row["ci"])]
    assert len(matches) == 1
    return matches[0]


def test_grid_is_complete():
    full = REF[REF["rows"] == ""]
    assert sorted(set(full["dataset"])) == DATASETS and len(DATASETS) >= 11
    for dataset in DATASETS:
        cells = full[full["dataset"] == dataset]
        assert sorted(zip(cells["method"], cells["ci"])) == sorted((m, c) for m in METHODS for c in CI_METHODS)
    small = REF[REF["rows"] != ""]
    assert sorted(set(small["rows"])) == ["2", "3"]
    assert len(small) == 2 * len(METHODS) * len(CI_METHODS)
    assert len(CELLS) == len(REF)
    # every statistic has metafor values (not only errors) in the grid, and some errors are covered too
    for column in ("egger_z", "begg_p", "trimfill_estimate"):
        assert (full[column] != "").all()
    assert (REF["egger_error"] != "").sum() == 16 and (REF["trimfill_error"] != "").sum() == 16
    assert {"true", "false"} <= set(REF["begg_exact"])  # exact and tie-corrected p-values both checked
    assert (full["trimfill_k0"].astype(float) > 0).any() and set(full["trimfill_side"]) == {"left", "right"}


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_egger_matches_regtest(case):
    row = REF.iloc[case]
    _, yi, vi, options = inputs(case)
    if row["egger_error"]:
        with pytest.raises(ModelError):
            egger_test(yi, vi, options)
        return
    result = egger_test(yi, vi, options)
    assert close(result.statistic, row["egger_z"]), (result.statistic, row["egger_z"])
    assert close(result.p, row["egger_p"]), (result.p, row["egger_p"])
    assert close(result.limit_estimate, row["egger_limit"])
    assert (result.df is None) == (row["egger_df"] == "") and close(result.df, row["egger_df"])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_begg_matches_ranktest(case):
    row = REF.iloc[case]
    _, yi, vi, _ = inputs(case)
    result = rank_test(yi, vi)
    assert close(result.tau, row["begg_tau"]), (result.tau, row["begg_tau"])
    assert close(result.p, row["begg_p"]), (result.p, row["begg_p"])
    assert result.exact == (row["begg_exact"] == "true")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_trimfill_matches_metafor(case):
    row = REF.iloc[case]
    _, yi, vi, options = inputs(case)
    if row["trimfill_error"]:
        with pytest.raises(ModelError):
            trim_and_fill(yi, vi, options)
        return
    result = trim_and_fill(yi, vi, options)
    assert result.k0 == int(row["trimfill_k0"]) and result.side == row["trimfill_side"]
    assert close(result.estimate, row["trimfill_estimate"]), (result.estimate, row["trimfill_estimate"])
    filled = cell(case).get("trimfill", {"filled_yi": [], "filled_vi": []})
    np.testing.assert_allclose(result.filled_yi, filled["filled_yi"], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(result.filled_vi, filled["filled_vi"], rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_leave_one_out_matches_leave1out(case):
    row = REF.iloc[case]
    studies, yi, vi, options = inputs(case)
    ref = cell(case)
    assert ref["studies"] == list(studies) and row["leave1out_error"] == ""
    result = leave_one_out(studies, yi, vi, options)
    assert [r.study for r in result] == list(studies)
    for r, estimate in zip(result, ref["leave1out"]["estimate"]):
        assert close(r.estimate, estimate), (r.study, r.estimate, estimate)
    if options.method == "FE":  # metafor's leave1out reports no tau^2 for FE models; ours is 0
        assert ref["leave1out"]["tau2"] is None and all(r.tau2 == 0 for r in result)
    else:
        for r, tau2 in zip(result, ref["leave1out"]["tau2"]):
            assert close(r.tau2, tau2), (r.study, r.tau2, tau2)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_influence_matches_metafor(case):
    row = REF.iloc[case]
    studies, yi, vi, options = inputs(case)
    assert row["influence_error"] == ""
    ref = cell(case)["influence"]
    result = influence(studies, yi, vi, options)
    for name in ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "qe_del", "hat", "weight", "dfbetas"):
        for r, theirs in zip(result, ref[name]):
            assert close(getattr(r, name), theirs), (name, r.study, getattr(r, name), theirs)
    assert [r.influential for r in result] == [bool(x) for x in ref["influential"]]


@pytest.mark.parametrize("dataset", ["bcg_rr", "bangertdrowns_gen", "normand_smd", "hackshaw_or_ci"])
def test_cli_json_keys_and_values(dataset):
    full = REF[(REF["rows"] == "") & (REF["dataset"] == dataset)]
    for case, row in full.iterrows():
        args = [str(REFERENCE / "datasets" / f"{dataset}.csv"), "--measure", row["measure"],
                "--method", row["method"], "--ci", row["ci"], "--json"]
        out = CliRunner().invoke(bias, args)
        assert out.exit_code == 0, out.output
        data = json.loads(out.stdout)
        k = int(row["k"])
        assert set(data) == JSON_KEYS | ({"warnings"} if k < 10 else set())
        assert data["k"] == k and data["measure"] == row["measure"] and data["method"] == row["method"]
        for key, column in [("egger_z", "egger_z"), ("egger_p", "egger_p"), ("begg_tau", "begg_tau"),
                            ("begg_p", "begg_p"), ("trimfill_estimate", "trimfill_estimate")]:
            assert close(data[key], row[column]), (key, data[key], row[column])
        assert data["trimfill_k0"] == int(row["trimfill_k0"]) and data["trimfill_side"] == row["trimfill_side"]
        estimates = cell(case)["leave1out"]["estimate"]
        assert [set(r) for r in data["leave_one_out"]] == [{"study", "estimate", "tau2"}] * k
        assert all(close(r["estimate"], e) for r, e in zip(data["leave_one_out"], estimates))
        if k < 10:
            assert any("k = " in w and "Cochrane" in w for w in data["warnings"])


def test_cli_json_small_k_warns_and_still_computes():
    out = CliRunner().invoke(bias, [str(REFERENCE / "datasets" / "normand_smd.csv"), "--measure", "SMD", "--json"])
    data = json.loads(out.stdout)
    assert out.exit_code == 0 and data["k"] == 9
    assert data["egger_z"] is not None and data["begg_p"] is not None and data["trimfill_k0"] is not None
    assert "warnings" in data and "Cochrane" in data["warnings"][0]


def test_cli_text_hides_tests_below_ten_studies():
    small = CliRunner().invoke(bias, [str(REFERENCE / "datasets" / "hine_rd.csv"), "--measure", "RD"])
    assert small.exit_code == 0
    assert "k >= 10" in small.stdout and "Cochrane Handbook" in small.stdout
    assert "Egger" not in small.stdout and "Leave-one-out" in small.stdout
    large = CliRunner().invoke(bias, [str(REFERENCE / "datasets" / "bcg_rr.csv"), "--measure", "RR"])
    assert large.exit_code == 0
    assert "Egger's regression test" in large.stdout and "Begg's rank correlation test" in large.stdout
    assert "Trim-and-fill" in large.stdout and "Cochrane Handbook" in large.stdout


@pytest.mark.parametrize("text, measure, fragments", [
    ("study,year,events_treat,n_treat,events_ctrl,n_ctrl\nA,2000,45,40,2,40\nB,x,2,20,3,0\n", "OR",
     ["row 1, column events_treat", "row 2, column year", "row 2, column n_ctrl"]),
    ("study,year,yi,vi\nA,2000,0.1,abc\nB,2001,0.2,0.03\n", "GEN", ["row 1, column vi", "'abc' is not a number"]),
    ("", "GEN", ["the sheet is empty"]),
])
def test_cli_bad_input_lists_every_problem_and_exits_1(tmp_path, text, measure, fragments):
    path = tmp_path / "sheet.csv"
    path.write_text(text)
    out = CliRunner().invoke(bias, [str(path), "--measure", measure, "--json"])
    assert out.exit_code == 1
    assert out.exception is None or isinstance(out.exception, SystemExit)
    assert "Traceback" not in out.output and out.stdout == ""
    for fragment in fragments:
        assert fragment in out.stderr, out.stderr


def test_cli_missing_file(tmp_path):
    out = CliRunner().invoke(bias, [str(tmp_path / "nope.csv"), "--measure", "GEN"])
    assert out.exit_code == 1 and "does not exist" in out.stderr

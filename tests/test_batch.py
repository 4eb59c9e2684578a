"""`meta batch`: a long file of many analyses gives, row for row, what `meta pool` gives each of them.

The reference datasets (metafor-checked in test_metafor_reference.py) are laid end to end as the
analyses of long files, one file per measure; chunking, the input and output formats and the
dask engine must not change a number.
"""

import io
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from meta.batch.engine import GROUP_NAMES, check_rows, effect_arrays
from meta.cli.batch import batch
from meta.sheets.analyses import pool_sheet
from meta.sheets.load import check_effect_table, load_sheet
from meta.stats.effects import compute_effects
from meta.stats.options import METHODS, EffectOptions, PoolOptions
from meta.stats.pooling import FIELDS, pool_batch
from meta.stats.results import CONTRACT_FIELDS

from .conftest import REFERENCE

DATASETS = REFERENCE / "datasets"
# measure -> the datasets laid end to end in its long file: every effect group, zero cells, k = 48
LONG_FILES = {
    "GEN": ["raudenbush_gen", "bangertdrowns_gen"],
    "OR": ["nielweise_or", "hackshaw_or_ci"],
    "RR": ["bcg_rr", "nielweise_rr", "bcg_rr_cells"],
    "RD": ["hine_rd"],
    "SMD": ["normand_smd", "normand_smd_from_d"],
    "MD": ["normand_md", "normand_md_ci"],
}
CONTRACT = [name for name in CONTRACT_FIELDS if name not in ("measure", "method", "ci_method")]
NOT_CONVERGING = ([-0.63, 1.31, 0.1, -0.1], [0.28, 0.45, 0.27, 0.03])  # metafor 3.8-1: "Fisher scoring
# algorithm did not converge" (REML)


def long_frame(measure) -> pd.DataFrame:
    parts = []
    for dataset in LONG_FILES[measure]:
        sheet = pd.read_csv(DATASETS / f"{dataset}.csv")
        parts.append(sheet.drop(columns=["study", "year"]).assign(analysis=dataset))
    frame = pd.concat(parts, ignore_index=True)
    return frame[["analysis", *[c for c in frame.columns if c != "analysis"]]]


def invoke(*args):
    return CliRunner().invoke(batch, [*map(str, args), "--no-progress"])


def read_output(result) -> pd.DataFrame:
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout), dtype={"analysis": str})


def test_vectorised_effect_sizes_equal_effects_py():
    cases = [(m, d, {}) for m, datasets in LONG_FILES.items() for d in datasets]
    cases += [("RR", "nielweise_rr_drop00", {"zero_cells": "drop"}), ("MD", "normand_md_pooled", {"md_variance": "pooled"}),
              ("HR", "hackshaw_or_ci", {}), ("OR", "raudenbush_gen", {})]
    for measure, dataset, extra in cases:
        options = EffectOptions(measure, **extra)
        frame, _ = load_sheet(DATASETS / f"{dataset}.csv")
        typed, problems = check_effect_table(frame, dataset, measure)
        assert problems == []
        expected = compute_effects(typed, options)
        columns = {c: typed[c].to_numpy(dtype=float) for c in typed.columns if c not in ("study", "year")}
        group, problems = check_rows(columns, np.arange(1, len(typed) + 1), dataset, measure)
        assert problems == []
        yi, vi, keep = effect_arrays(columns, group, options)
        np.testing.assert_array_equal(yi[keep], expected.yi)
        np.testing.assert_array_equal(vi[keep], expected.vi)


@pytest.mark.parametrize("method, ci", [("REML", "knha"), ("DL", "z"), ("PM", "knha"), ("FE", "z"),
                                        ("EB", "z"), ("SJ", "knha")])
def test_batch_equals_pool_for_reference_datasets(tmp_path, method, ci):
    for measure, datasets in LONG_FILES.items():
        path = tmp_path / f"{measure}.csv"
        long_frame(measure).to_csv(path, index=False)
        out = read_output(invoke(path, "--measure", measure, "--method", method, "--ci", ci))
        assert list(out["analysis"]) == datasets
        for dataset, (_, row) in zip(datasets, out.iterrows()):
            expected = pool_sheet(DATASETS / f"{dataset}.csv", EffectOptions(measure),
                                  PoolOptions(method=method, ci=ci)).to_dict()
            for name in CONTRACT:  # the same bits
                assert row[name] == expected[name] or (expected[name] is None and math.isnan(row[name])), (
                    dataset, name, row[name], expected[name])
            assert row["measure"] == measure and row["method"] == method and row["ci_method"] == ci
            assert row["converged"]


def test_zero_cells_drop_and_pooled_md_options(tmp_path):
    for measure, dataset, option, flag in [("RR", "nielweise_rr_drop00", {"zero_cells": "drop"}, "--zero-cells"),
                                           ("MD", "normand_md_pooled", {"md_variance": "pooled"}, "--md-variance")]:
        path = tmp_path / f"{dataset}.csv"
        pd.read_csv(DATASETS / f"{dataset}.csv").assign(analysis="one").to_csv(path, index=False)
        out = read_output(invoke(path, "--measure", measure, flag, next(iter(option.values()))))
        expected = pool_sheet(DATASETS / f"{dataset}.csv", EffectOptions(measure, **option), PoolOptions())
        assert out.loc[0, "k"] == expected.k
        assert (out.loc[0, "estimate"], out.loc[0, "tau2"]) == (expected.estimate, expected.tau2)


def random_long_file(path, n=300, seed=3):
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 30, n)
    vi = rng.uniform(0.01, 0.5, k.sum())
    yi = np.repeat(rng.normal(0, 0.5, n), k) + rng.normal(0, 1, k.sum()) * np.sqrt(vi + 0.05)
    frame = pd.DataFrame({"analysis": np.repeat([f"a{j:04d}" for j in range(n)], k), "yi": yi, "vi": vi})
    frame.to_csv(path, index=False)
    return frame, k


def test_chunk_boundaries_do_not_change_results(tmp_path):
    path = tmp_path / "long.csv"
    frame, k = random_long_file(path)
    whole = read_output(invoke(path, "--measure", "GEN", "--ci", "knha"))
    assert len(whole) == k.size and list(whole["k"]) == list(k)
    for chunk in (29, 64, 1000):
        pd.testing.assert_frame_equal(read_output(invoke(path, "--measure", "GEN", "--ci", "knha",
                                                         "--chunk-size", chunk)), whole, check_exact=True)
    few = tmp_path / "few.csv"
    frame[frame["analysis"] < "a0030"].to_csv(few, index=False)
    for chunk in (1, 2, 7):
        pd.testing.assert_frame_equal(read_output(invoke(few, "--measure", "GEN", "--ci", "knha",
                                                         "--chunk-size", chunk)), whole.iloc[:30], check_exact=True)


@pytest.mark.parametrize("method", METHODS)
def test_an_analysis_gets_the_same_bits_in_any_batch(method):
    """Padding, bucketing and narrowing of the working sets never change a number."""
    rng = np.random.default_rng(11)
    k = rng.integers(1, 25, 120)
    vi = rng.uniform(0.01, 0.5, k.sum()) * np.repeat(rng.choice([0.1, 1, 10], k.size), k)
    yi = np.repeat(rng.normal(0, 0.5, k.size), k) + rng.normal(0, 1, k.sum()) * np.sqrt(vi + 0.03)
    starts = np.concatenate([[0], np.cumsum(k)])
    for ci in ("z", "knha"):
        options = PoolOptions(method=method, ci=ci)
        whole = pool_batch(yi, vi, k, options)
        for j in range(k.size):
            one = pool_batch(yi[starts[j]:starts[j + 1]], vi[starts[j]:starts[j + 1]], [k[j]], options)
            for name in FIELDS:
                np.testing.assert_array_equal(getattr(one, name), getattr(whole, name)[j:j + 1], err_msg=name)


def test_parquet_and_csv_give_the_same(tmp_path):
    frame, _ = random_long_file(tmp_path / "long.csv", n=80)
    frame.to_parquet(tmp_path / "long.parquet", index=False)
    from_csv = read_output(invoke(tmp_path / "long.csv", "--measure", "GEN", "--chunk-size", 50))
    from_parquet = read_output(invoke(tmp_path / "long.parquet", "--measure", "GEN", "--chunk-size", 50))
    pd.testing.assert_frame_equal(from_parquet, from_csv, check_exact=True)
    result = invoke(tmp_path / "long.csv", "--measure", "GEN", "--out", tmp_path / "out.parquet")
    assert result.exit_code == 0 and "80 analyses pooled" in result.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out.parquet"), from_csv, check_dtype=False,
                                  check_exact=True)
    assert invoke(tmp_path / "long.csv", "--measure", "GEN", "--out", tmp_path / "out.csv").exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out.csv", dtype={"analysis": str}), from_csv,
                                  check_exact=True)


def test_dask_engine_equals_local(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    path = tmp_path / "long.csv"
    random_long_file(path, n=120)
    local = read_output(invoke(path, "--measure", "GEN", "--method", "PM", "--chunk-size", 200))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        remote = read_output(invoke(path, "--measure", "GEN", "--method", "PM", "--chunk-size", 200,
                                    "--engine", "dask", "--scheduler", cluster.scheduler_address))
    pd.testing.assert_frame_equal(remote, local, check_exact=True)


def test_non_convergence_is_flagged(tmp_path):
    yi, vi = NOT_CONVERGING
    path = tmp_path / "long.csv"
    pd.DataFrame({"analysis": ["stuck"] * 4 + ["fine"] * 3, "yi": yi + [0.1, 0.2, 0.3],
                  "vi": vi + [0.01, 0.02, 0.03]}).to_csv(path, index=False)
    result = invoke(path, "--measure", "GEN", "--method", "REML")
    out = read_output(result)
    assert list(out.columns) == ["analysis", *CONTRACT_FIELDS, "converged", "iterations"]
    assert list(out["converged"]) == [False, True]
    assert out.loc[0, "iterations"] == 101 and out.loc[1, "iterations"] < 101
    assert "1 analyses did not converge" in result.stderr


def test_ratio_measures_are_back_transformed(tmp_path):
    path = tmp_path / "OR.csv"
    long_frame("OR").to_csv(path, index=False)
    out = read_output(invoke(path, "--measure", "OR"))
    for dataset, (_, row) in zip(LONG_FILES["OR"], out.iterrows()):
        expected = pool_sheet(DATASETS / f"{dataset}.csv", EffectOptions("OR"), PoolOptions(ci="knha")).to_dict()
        for name in ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper"):
            assert row[f"{name}_exp"] == expected[f"{name}_exp"], (dataset, name)


BAD = [
    ("missing analysis column", "yi,vi\n0.1,0.01\n", ["column analysis", "is missing"]),
    ("text in a number", "analysis,yi,vi\na,0.1,0.01\na,0.2,abc\n", ["row 2, column vi", "'abc' is not a number"]),
    ("analysis not contiguous", "analysis,yi,vi\na,0.1,0.01\nb,0.2,0.02\na,0.3,0.03\n",
     ["row 3, column analysis", "rows of analysis 'a' continue here"]),
    ("vi not positive", "analysis,yi,vi\na,0.1,0.01\na,0.2,-1\n", ["row 2, column vi", "not positive"]),
    ("no effect in a row", "analysis,yi,vi\na,0.1,0.01\na,,\n", ["row 2", "no effect columns are filled"]),
    ("empty label", "analysis,yi,vi\na,0.1,0.01\n,0.2,0.02\n", ["row 2, column analysis", "label is empty"]),
    ("header only", "analysis,yi,vi\n", ["no rows"]),
    ("row with an extra field", "analysis,yi,vi\na,0.1,0.01\na,0.2,0.02,5\n", ["Expected 3 fields in line 3, saw 4"]),
]


@pytest.mark.parametrize("label, text, expected", BAD, ids=[b[0] for b in BAD])
def test_bad_input_exits_1_with_row_and_column(tmp_path, label, text, expected):
    path = tmp_path / "long.csv"
    path.write_text(text)
    result = invoke(path, "--measure", "GEN", "--chunk-size", 2)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for fragment in expected:
        assert fragment in result.stderr, result.stderr


def test_binary_rows_are_checked(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("analysis,events_treat,n_treat,events_ctrl,n_ctrl\na,45,40,2,40\na,2.5,20,3,20\n")
    result = invoke(path, "--measure", "RR")
    assert result.exit_code == 1
    assert "row 1, column events_treat: events_treat (45) is larger than n_treat (40)" in result.stderr
    assert "row 2, column events_treat: 2.5 is not a whole number" in result.stderr
    wrong = invoke(path, "--measure", "SMD")
    assert wrong.exit_code == 1 and "binary columns cannot give SMD" in wrong.stderr


def test_binary_arms_given_as_non_events_are_checked(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("analysis,events_treat,n_treat,nonevents_treat,events_ctrl,n_ctrl,nonevents_ctrl\n"
                    "a,3,20,16,6,20,\na,2,,-1,5,,10\na,0,,0,5,15,\na,4,,,5,15,\n")
    result = invoke(path, "--measure", "OR")
    assert result.exit_code == 1
    for fragment in ["row 1, column n_treat,nonevents_treat: n_treat (20) is not events_treat + nonevents_treat (3 + 16)",
                     "row 2, column nonevents_treat: nonevents_treat (-1) is negative",
                     "row 3, column nonevents_treat: the arm has no people",
                     "row 4, column n_treat: n_treat or nonevents_treat is empty"]:
        assert fragment in result.stderr, result.stderr
    assert "5 problem(s)" not in result.stderr and "4 problem(s)" in result.stderr


def test_differences_with_a_ci_are_checked(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("analysis,estimate,ci_lower,ci_upper\na,-25.4,-10.0,13.3\na,-5,-8,-2\n")
    assert "row 1, column ci_lower,ci_upper: the CI -10 to 13.3 does not contain" in invoke(path, "--measure", "MD").stderr
    rd = invoke(path, "--measure", "RD")
    assert rd.exit_code == 1 and "row 2, column estimate: estimate (-5) is not a risk difference" in rd.stderr


def test_many_problems_are_capped(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("analysis,yi,vi\n" + "a,0.1,-1\n" * 50)
    result = invoke(path, "--measure", "GEN")
    assert result.exit_code == 1
    assert "row 20, column vi" in result.stderr and "row 21," not in result.stderr
    assert "30 more row(s)" in result.stderr and "21 problem(s)" in result.stderr


def test_failed_batch_leaves_no_output_file(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("analysis,yi,vi\na,0.1,0.01\na,0.2,0.02\nb,0.3,0.03\nb,0.1,x\n")
    result = invoke(path, "--measure", "GEN", "--chunk-size", 2, "--out", tmp_path / "out.csv")
    assert result.exit_code == 1 and "row 4, column vi" in result.stderr
    assert not any(p.name.startswith(("out", ".out")) for p in tmp_path.iterdir())


def test_missing_file_and_option_errors(tmp_path):
    missing = invoke(tmp_path / "nope.csv", "--measure", "GEN")
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    path = tmp_path / "long.csv"
    path.write_text("analysis,yi,vi\na,0.1,0.01\n")
    alone = invoke(path, "--measure", "GEN", "--scheduler", "tcp://127.0.0.1:1")
    assert alone.exit_code == 1 and "--scheduler needs --engine dask" in alone.stderr
    assert invoke(path, "--measure", "XX").exit_code == 2
    assert invoke(path, "--measure", "GEN", "--chunk-size", 0).exit_code == 2


def test_group_names_cover_the_vocabulary():
    assert set(GROUP_NAMES) == {"precomputed", "interval", "binary", "continuous", "standardised"}

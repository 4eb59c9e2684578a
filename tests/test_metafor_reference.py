"""Every estimator and interval against metafor reference values (reference/make_reference.R).

The grid: nine published datasets (binary with zero cells, ratio with CI, continuous, precomputed)
x nine tau^2 methods x {z, knha}; written by the committed R script with the versions in
reference/VERSIONS. Agreement is required to rel 1e-6 (we follow metafor's algorithms, so the
observed differences are ~1e-14).
"""

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from meta.cli.main import main
from meta.sheets.analyses import pool_sheet
from meta.sheets.load import check_effect_table, load_sheet
from meta.stats.effects import compute_effects
from meta.stats.options import CI_METHODS, METHODS, EffectOptions, PoolOptions

from .conftest import REFERENCE

REF = pd.read_csv(REFERENCE / "metafor_reference.csv", keep_default_na=False, dtype=str)
ESCALC = pd.read_csv(REFERENCE / "metafor_escalc.csv", keep_default_na=False, dtype=str)
FIELDS = ["k", "estimate", "se", "ci_lower", "ci_upper", "p", "pi_lower", "pi_upper", "tau2", "tau2_se",
          "tau2_ci_lower", "tau2_ci_upper", "i2", "i2_ci_lower", "i2_ci_upper", "h2", "h2_ci_lower",
          "h2_ci_upper", "q", "q_p"]


def effect_options(row) -> EffectOptions:
    extra = dict(item.split("=") for item in row["options"].split(";") if item)
    return EffectOptions(row["measure"], **extra)


def close(ours: float, theirs: str, rel: float = 1e-6, abs_: float = 1e-12) -> bool:
    if theirs == "":
        return ours is None or (isinstance(ours, float) and math.isnan(ours))
    return math.isclose(float(ours), float(theirs), rel_tol=rel, abs_tol=abs_)


def test_grid_is_complete():
    datasets = sorted(set(REF["dataset"]))
    assert len(datasets) >= 6
    for dataset in datasets:
        cells = REF[REF["dataset"] == dataset]
        assert sorted(set(zip(cells["method"], cells["ci"]))) == sorted(
            (m, c) for m in METHODS for c in CI_METHODS), dataset
        assert len(cells) == len(METHODS) * len(CI_METHODS)
    groups = set()
    for dataset in datasets:
        header = (REFERENCE / "datasets" / f"{dataset}.csv").read_text().splitlines()[0]
        groups |= {g for g, marker in [("binary", "events_treat"), ("interval", "estimate"),
                                       ("continuous", "mean_treat"), ("precomputed", '"yi"'),
                                       ("standardised", '"d"')] if marker in header}
    assert groups == {"binary", "interval", "continuous", "precomputed", "standardised"}
    # binary data with zero cells, including a double-zero study, are in the grid
    niel = pd.read_csv(REFERENCE / "datasets" / "nielweise_or.csv")
    assert ((niel.events_treat == 0) & (niel.events_ctrl == 0)).any()


@pytest.mark.parametrize("dataset", sorted(set(ESCALC["dataset"])))
def test_effect_sizes_match_escalc(dataset):
    ref = ESCALC[ESCALC["dataset"] == dataset]
    row = REF[REF["dataset"] == dataset].iloc[0]
    frame, problems = load_sheet(REFERENCE / "datasets" / f"{dataset}.csv")
    typed, problems = check_effect_table(frame, dataset, row["measure"])
    assert problems == []
    effects = compute_effects(typed, effect_options(row))
    expected = ref[ref["yi"] != ""]
    assert effects.k == len(expected)
    np.testing.assert_allclose(effects.yi, expected["yi"].astype(float), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(effects.vi, expected["vi"].astype(float), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("case", range(len(REF)), ids=lambda i: "-".join(REF.iloc[i][["dataset", "method", "ci"]]))
def test_pool_matches_metafor(case):
    row = REF.iloc[case]
    result = pool_sheet(REFERENCE / "datasets" / f"{row['dataset']}.csv", effect_options(row),
                        PoolOptions(method=row["method"], ci=row["ci"])).to_dict()
    mismatches = {}
    for name in FIELDS:
        ours = result.get(name)
        if name in ("tau2_se",):
            continue
        if not close(ours, row[name]):
            mismatches[name] = (ours, row[name])
    assert mismatches == {}


@pytest.mark.parametrize("dataset", sorted(set(REF["dataset"])))
def test_tau2_se_matches_metafor(dataset):
    for _, row in REF[REF["dataset"] == dataset].iterrows():
        result = pool_sheet(REFERENCE / "datasets" / f"{dataset}.csv", effect_options(row),
                            PoolOptions(method=row["method"], ci=row["ci"]))
        assert close(result.tau2_se, row["tau2_se"]), (row["method"], result.tau2_se, row["tau2_se"])


@pytest.mark.parametrize("dataset", ["bcg_rr", "normand_smd", "hackshaw_or_ci", "raudenbush_gen"])
def test_cli_json_matches_metafor(dataset):
    runner = CliRunner()
    for _, row in REF[REF["dataset"] == dataset].iterrows():
        args = ["pool", str(REFERENCE / "datasets" / f"{dataset}.csv"), "--measure", row["measure"],
                "--method", row["method"], "--ci", row["ci"], "--json"]
        out = runner.invoke(main, args)
        assert out.exit_code == 0, out.output
        data = json.loads(out.stdout)
        for name in ["k", "estimate", "se", "ci_lower", "ci_upper", "p", "pi_lower", "pi_upper", "tau2",
                     "tau2_ci_lower", "tau2_ci_upper", "i2", "h2", "q", "q_p"]:
            assert close(data[name], row[name]), (row["method"], row["ci"], name, data[name], row[name])
        assert data["method"] == row["method"] and data["ci_method"] == row["ci"]

"""The test family of R meta's metabias (meta/stats/smallstudy.py) against reference values.

reference/make_smallstudy_reference.R writes reference/metafor_smallstudy_reference.csv: classical
Egger from metafor's regtest(model = "lm"), Thompson-Sharp, Harbord and Peters as metabias computes
them (written out in the script from R meta's source), today's regtest (egger_rma, Knapp-Hartung) and
ranktest (begg), on dat.egger2001, dat.bcg, dat.nielweise2007 and dat.hackshaw1998. Agreement to rel 1e-6.
"""

import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner

import meta
from meta.cli.bias import bias
from meta.stats.smallstudy import SmallStudyTests, default_test

from .conftest import REFERENCE

REF = pd.read_csv(REFERENCE / "metafor_smallstudy_reference.csv", keep_default_na=False, dtype=str)
CASES = sorted(set(zip(REF["dataset"], REF["measure"])))
EGGER2001 = REFERENCE / "datasets" / "smallstudy" / "egger2001_or.csv"


def close(ours, theirs: str) -> bool:
    if theirs == "":
        return ours is None
    return math.isclose(float(ours), float(theirs), rel_tol=1e-6, abs_tol=1e-12)


def report(dataset, measure, method="REML"):
    return meta.bias(REFERENCE / "datasets" / f"{dataset}.csv", measure=measure, method=method, ci="knha")


@pytest.mark.parametrize("dataset, measure", CASES, ids=[f"{d}-{m}" for d, m in CASES])
def test_every_test_agrees_with_the_reference(dataset, measure):
    rows = REF[(REF["dataset"] == dataset) & (REF["measure"] == measure)]
    for method in ("REML", "DL"):
        tests = report(dataset, measure, method).tests
        for _, row in rows[rows["method"].isin(["", method])].iterrows():
            ours = getattr(tests, row["test"])
            assert ours is not None, row["test"]
            assert close(ours.statistic, row["statistic"]), (row["test"], method, ours.statistic, row["statistic"])
            assert close(ours.df, row["df"]) and close(ours.p, row["p"]), (row["test"], method, ours, row["p"])
        binary = "harbord" in set(rows["test"])
        assert (tests.peters is None, tests.harbord is None) == (not binary, not binary)


def test_egger2001_classical_egger_anchor():
    # dat.egger2001 (16 trials of magnesium, odds ratios): classical Egger t = -5.7846 on df = 14, as
    # metafor 3.8.1 prints regtest(rma(...), model = "lm") when reference/make_smallstudy_reference.R
    # runs; the same data's regtest() default, z = -4.6686, is in metafor's own tests
    # (wviechtb/metafor, tests/testthat/test_misc_pub_bias.r: round(sav$zval, 4) == -4.6686), which is
    # metabias' Thompson-Sharp statistic (REML).
    tests = meta.bias(EGGER2001, measure="OR").tests
    assert round(tests.egger.statistic, 2) == -5.78 and tests.egger.df == 14
    assert round(tests.thompson_sharp.statistic, 4) == -4.6686
    assert tests.default_test == "harbord"


@pytest.mark.parametrize("measure, binary, expected", [
    ("OR", True, "harbord"), ("RR", True, "egger"), ("RD", True, "egger"), ("OR", False, "egger"),
    ("SMD", False, "egger"), ("MD", False, "egger"), ("GEN", False, "egger"), ("HR", False, "egger"),
])
def test_default_test_as_metabias(measure, binary, expected):
    assert default_test(measure, binary) == expected


def test_interval_odds_ratios_have_no_count_based_tests():
    tests = report("hackshaw_or_ci", "OR").tests
    assert tests.peters is None and tests.harbord is None and tests.default_test == "egger"
    assert tests.egger is not None and tests.thompson_sharp is not None


def test_fewer_than_three_studies_give_no_tests(tmp_path):
    path = tmp_path / "two.csv"
    pd.read_csv(REFERENCE / "datasets" / "bcg_rr.csv").head(2).to_csv(path, index=False)
    tests = meta.bias(path, measure="RR").tests
    assert all(getattr(tests, name) is None for name in SmallStudyTests.NAMES)


def test_cli_json_has_the_six_tests():
    out = CliRunner().invoke(bias, [str(EGGER2001), "--measure", "OR", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data["tests"]) == {"egger", "egger_rma", "thompson_sharp", "peters", "harbord", "begg"}
    assert all(set(test) == {"statistic", "df", "p"} for test in data["tests"].values())
    assert data["default_test"] == "harbord"
    assert data["tests"]["egger_rma"]["statistic"] == data["egger_z"]  # today's top-level fields stay


def test_cli_text_shows_the_family_only_from_ten_studies():
    large = CliRunner().invoke(bias, [str(EGGER2001), "--measure", "OR"])
    assert "metabias" in large.stdout and "Harbord: t = -5.5620" in large.stdout
    small = CliRunner().invoke(bias, [str(REFERENCE / "datasets" / "hine_rd.csv"), "--measure", "RD"])
    assert small.exit_code == 0 and "metabias" not in small.stdout

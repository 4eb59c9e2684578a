"""Edge cases of meta/bias.py where metafor 3.8-1 stops or returns NA (checked by hand in R).

    yi <- c(0.1, 0.5, -0.2, 0.3, 0.9); vi <- rep(0.04, 5); fit <- rma(yi, vi)
    regtest(fit)   # Error: Model matrix no longer of full rank after addition of predictor.
    ranktest(fit)  # Kendall's tau = NA, p = NA
    trimfill(fit)  # Error in if (res$beta[2] < 0): missing value where TRUE/FALSE needed
    fit1 <- rma(0.2, 0.01); ranktest(fit1)   # Error: not enough finite observations
"""

import json
import math

import pytest
from click.testing import CliRunner

from meta.cli.bias import bias
from meta.stats.bias import _kendall_cdf, egger_test, rank_test, trim_and_fill
from meta.stats.options import PoolOptions
from meta.stats.regression import ModelError

EQUAL_VARIANCES = ([0.1, 0.5, -0.2, 0.3, 0.9], [0.04] * 5)


def test_equal_variances_stop_egger_and_trimfill_as_metafor():
    yi, vi = EQUAL_VARIANCES
    with pytest.raises(ModelError, match="redundant"):
        egger_test(yi, vi, PoolOptions())
    with pytest.raises(ModelError, match="redundant"):
        trim_and_fill(yi, vi, PoolOptions())
    result = rank_test(yi, vi)
    assert math.isnan(result.tau) and math.isnan(result.p)


def test_one_study_stops_every_test():
    with pytest.raises(ModelError):
        rank_test([0.2], [0.01])
    with pytest.raises(ModelError):
        egger_test([0.2], [0.01], PoolOptions(method="FE"))
    with pytest.raises(ModelError):
        trim_and_fill([0.2], [0.01], PoolOptions())


def test_kendall_null_distribution_is_exact():
    # n = 4: the 24 orderings have 0..6 inversions with counts 1, 3, 5, 6, 5, 3, 1 (Mahonian numbers)
    assert [round(_kendall_cdf(q, 4) * 24) for q in range(7)] == [1, 4, 9, 15, 20, 23, 24]
    assert _kendall_cdf(-1, 4) == 0.0 and _kendall_cdf(6, 4) == 1.0


def test_cli_single_study_reports_nothing_computable(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("study,year,yi,vi\nA,2000,0.2,0.01\n")
    out = CliRunner().invoke(bias, [str(path), "--measure", "GEN", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["k"] == 1 and data["leave_one_out"] == []
    assert all(data[key] is None for key in ("egger_z", "egger_p", "begg_tau", "begg_p", "trimfill_k0",
                                             "trimfill_side", "trimfill_estimate"))
    joined = " ".join(data["warnings"])
    for fragment in ("Egger's test not computed", "Begg's test not computed", "trim-and-fill not computed",
                     "leave-one-out not computed", "Cochrane"):
        assert fragment in joined

"""Trial sequential analysis: Lan-DeMets boundaries against published values, rpact and an independent
multivariate-normal solution (reference/make_tsa_reference.R); required information size; the Z-curve,
diversity and verdicts of a whole analysis; the plot."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import special

from meta.errors import OptionError
from meta.publish.plots import figure_bytes
from meta.publish.tsa_plot import tsa_plot
from meta.sheets.load import check_effect_table, load_sheet
from meta.stats.distributions import norm_sf
from meta.stats.effects import compute_effects
from meta.stats.options import EffectOptions, PoolOptions
from meta.stats.pooling import pool_batch
from meta.stats.tsa import (
    AnticipatedEffect,
    TSAError,
    lan_demets_bounds,
    obrien_fleming_spending,
    trial_sequential_analysis,
)

from .conftest import REFERENCE

BOUNDS = pd.read_csv(REFERENCE / "rpact_tsa_bounds.csv", dtype=str, keep_default_na=False)
SAMPLE_SIZE = pd.read_csv(REFERENCE / "rpact_tsa_sample_size.csv", dtype=float)
METAFOR = pd.read_csv(REFERENCE / "metafor_reference.csv", keep_default_na=False, dtype=str)
DESIGNS = list(BOUNDS.groupby(["set", "sides", "split", "alpha"], sort=False))


def design_id(i):
    (name, sides, split, alpha), _ = DESIGNS[i]
    return f"{name}-{sides}sided-{split or 'upper'}-{float(alpha):g}"


def ours_for(i):
    (_, sides, split, alpha), rows = DESIGNS[i]
    t = rows["fraction"].astype(float).to_numpy()
    bounds = lan_demets_bounds(t, float(alpha), int(sides), split or "per-boundary")
    level = float(alpha) if int(sides) == 1 or split == "shared" else float(alpha) / 2
    spent = obrien_fleming_spending(t, level) / (2 if split == "shared" else 1)
    return rows, bounds, np.diff(np.concatenate([[0.0], spent]))


# --- published worked examples --------------------------------------------------------------------


def test_published_example_gsdmvn_gs_b():
    """keaven.github.io/gsdmvn/reference/gs_b.html, example 'Generate an efficacy bound using a spending
    function': gsDesign(alpha = .025, k = 3, test.type = 1, sfu = sfLDOF, timing = c(.5, .75, 1))$upper$bound
    printed as 2.962588 2.359018 2.014084."""
    ours = lan_demets_bounds([0.5, 0.75, 1.0], alpha=0.025, sides=1)
    for value, published in zip(ours, (2.962588, 2.359018, 2.014084)):
        assert abs(value - published) <= 5e-7, (value, published)


def test_published_example_seqbounds_readme():
    """github.com/PharmCat/SeqBounds.jl README ('Using'): bounds([0.25, 0.5, 0.75, 1.0], 0.05; h = 0.05), a
    one-sided O'Brien-Fleming-type spending at 0.05: Z 3.74955, 2.53993, 2.01604, 1.72014. Its grid step
    h = 0.05 limits it to about 5e-5."""
    ours = lan_demets_bounds([0.25, 0.5, 0.75, 1.0], alpha=0.05, sides=1)
    for value, published in zip(ours, (3.74955, 2.53993, 2.01604, 1.72014)):
        assert abs(value - published) <= 5e-5, (value, published)


# --- reference grid -------------------------------------------------------------------------------


def test_reference_grid_is_complete():
    assert len(DESIGNS) == 40
    assert {(s, p) for (_, s, p, _), _ in DESIGNS} == {("2", "per-boundary"), ("1", ""), ("2", "shared")}
    assert (BOUNDS["boundary_mvtnorm"] != "").sum() == 99 and (BOUNDS["boundary"] == "Inf").sum() == 7


@pytest.mark.parametrize("design", range(len(DESIGNS)), ids=design_id)
def test_bounds_match_the_multivariate_normal_solution(design):
    """mvtnorm (Miwa) and uniroot: ~1e-10, except where a look spends less than 1e-7, where its absolute
    error on the probability shows (there our grid converges to 1e-9 as r grows)."""
    rows, ours, increment = ours_for(design)
    for value, (_, row), inc in zip(ours, rows.iterrows(), increment):
        if row["boundary_mvtnorm"]:
            assert math.isclose(value, float(row["boundary_mvtnorm"]), rel_tol=1e-6 if inc >= 1e-7 else 1e-5), \
                (row["look"], value, row["boundary_mvtnorm"])


@pytest.mark.parametrize("design", range(len(DESIGNS)), ids=design_id)
def test_bounds_match_rpact(design):
    """rpact's getDesignGroupSequential: agreement to 1e-5; where a look spends less than 1e-6 rpact's own
    integration drifts (up to 3e-4, by as much from the mvtnorm solution), and where it spends less than
    1e-9 it gives Inf; a first boundary of ours is then z of the alpha spent, exactly."""
    rows, ours, increment = ours_for(design)
    for value, (_, row), inc in zip(ours, rows.iterrows(), increment):
        if row["boundary"] == "Inf":
            assert inc < 1e-9 and value > 6
            if row["look"] == "1":
                assert math.isclose(value, -float(special.ndtri(inc)), rel_tol=1e-12)
            continue
        assert math.isclose(value, float(row["boundary"]), rel_tol=1e-5 if inc >= 1e-6 else 5e-4), \
            (row["look"], value, row["boundary"])
        assert math.isclose(float(np.sum(increment[: int(row["look"])])) * (1 if row["sides"] == "1" else 2),
                            float(row["alpha_spent"]), rel_tol=1e-6, abs_tol=1e-15)


def test_shared_split_first_look_is_the_naive_bound_but_later_looks_are_not():
    t = [0.2, 0.4, 0.6, 0.8, 1.0]
    shared = lan_demets_bounds(t, 0.05, 2, "shared")
    naive = [1.959963984540054 / math.sqrt(x) for x in t]
    assert math.isclose(shared[0], naive[0], rel_tol=1e-12)
    assert all(b > n + 1e-4 for b, n in zip(shared[1:], naive[1:]))  # z/sqrt(t) would spend more than alpha
    per_boundary = lan_demets_bounds(t, 0.05, 2)
    assert [round(b, 3) for b in per_boundary] == [4.877, 3.357, 2.680, 2.290, 2.031]


@pytest.mark.parametrize("fractions, kwargs", [
    ([0.5, 0.5, 1.0], {}), ([0.0, 1.0], {}), ([0.5, 1.2], {}), ([], {}),
    ([0.5, 1.0], {"sides": 3}), ([0.5, 1.0], {"split": "half"}), ([0.5, 1.0], {"alpha": 1.5}),
])
def test_bad_fractions_or_options_raise(fractions, kwargs):
    with pytest.raises(OptionError):
        lan_demets_bounds(fractions, **kwargs)


def test_no_alpha_spent_gives_an_infinite_boundary_and_the_next_ones_still_work():
    bounds = lan_demets_bounds([0.001, 0.5, 1.0], 0.05, 2)
    assert math.isinf(bounds[0])
    reference = lan_demets_bounds([0.5, 1.0], 0.05, 2)
    assert np.allclose(bounds[1:], reference, rtol=1e-9)


# --- required information size --------------------------------------------------------------------


@pytest.mark.parametrize("row", range(len(SAMPLE_SIZE)))
def test_required_participants_for_a_mean_difference_match_rpact(row):
    case = SAMPLE_SIZE.iloc[row]
    effect = AnticipatedEffect.mean_difference(case["difference"], case["sd"])
    assert math.isclose(effect.participants(case["alpha"], case["power"]), case["n"], rel_tol=1e-9)
    smd = AnticipatedEffect.standardised(case["difference"] / case["sd"])
    assert math.isclose(smd.participants(case["alpha"], case["power"]), case["n"], rel_tol=1e-9)


def test_required_participants_binary_formula():
    """Wetterslev et al. 2008: 4 (z_{1-a/2} + z_{1-b})^2 p(1-p) / delta^2, p the mean of pc and pe.
    pc = 10%, RRR 20%: pe = 8%, p = 9%, delta = 2%; (1.959964 + 1.281552)^2 = 10.5074."""
    effect = AnticipatedEffect.binary(rrr=0.2, control_risk=0.1)
    expected = 4 * (1.959963984540054 + 1.2815515655446004) ** 2 * 0.09 * 0.91 / 0.02**2
    assert math.isclose(effect.participants(0.05, 0.9), expected, rel_tol=1e-12)
    assert round(effect.participants(0.05, 0.9)) == 8606
    assert math.isclose(effect.theta("RR"), math.log(0.8)) and math.isclose(effect.theta("RD"), -0.02)
    assert math.isclose(effect.theta("OR"), math.log(0.08 / 0.92) - math.log(0.1 / 0.9))
    with pytest.raises(OptionError):
        effect.theta("SMD")
    with pytest.raises(OptionError):
        AnticipatedEffect.binary(rrr=1.2, control_risk=0.1)


# --- whole analyses -------------------------------------------------------------------------------


def bcg():
    frame, _ = load_sheet(REFERENCE / "datasets" / "bcg_rr.csv")
    typed, problems = check_effect_table(frame, "bcg_rr", "RR")
    assert problems == []
    effects = compute_effects(typed, EffectOptions("RR"))
    n = (frame["n_treat"].astype(float) + frame["n_ctrl"].astype(float)).to_numpy()
    return effects, n


def test_z_curve_and_diversity_of_the_bcg_trials():
    effects, n = bcg()
    result = trial_sequential_analysis(effects.yi, effects.vi, effects.years, AnticipatedEffect.binary(0.3, 0.05),
                                       "RR", "DL", n=n)
    years = sorted(set(effects.years))
    assert [p.label for p in result.points] == [f"{y:g}" for y in years]
    # every update is the DL meta-analysis of the trials published by then (the engine checked against metafor)
    for point, year in zip(result.points, years):
        keep = np.array(effects.years) <= year
        fit = pool_batch(effects.yi[keep], effects.vi[keep], np.array([keep.sum()]), PoolOptions("DL", qprofile=False))
        assert point.k == keep.sum() and math.isclose(point.z, fit.estimate[0] / fit.se[0], rel_tol=1e-12)
        assert point.information == n[keep].sum()
    # D^2 = 1 - V_FE / V_DL, from metafor's standard errors of the FE and DL models
    se = {m: float(METAFOR[(METAFOR["dataset"] == "bcg_rr") & (METAFOR["method"] == m) & (METAFOR["ci"] == "z")]["se"].iloc[0])
          for m in ("FE", "DL")}
    assert math.isclose(result.diversity, 1 - se["FE"] ** 2 / se["DL"] ** 2, rel_tol=1e-9)
    assert math.isclose(result.required, result.required_fixed / (1 - result.diversity), rel_tol=1e-12)
    assert math.isclose(result.required_fixed, AnticipatedEffect.binary(0.3, 0.05).participants(0.05, 0.9))
    assert result.verdict == "firm evidence: boundary crossed" and result.crossed_at == "1968"
    crossed = [p for p in result.points if p.crossed]
    assert crossed[0].label == "1968" and abs(crossed[0].z) >= crossed[0].boundary
    assert all(abs(p.z) < p.boundary for p in result.points if p.label < "1968")


def test_knapp_hartung_z_curve_is_the_z_equivalent_of_the_t_test_and_wald_is_selectable():
    effects, n = bcg()
    anticipated = AnticipatedEffect.binary(0.3, 0.05)
    primary = trial_sequential_analysis(effects.yi, effects.vi, effects.years, anticipated, "RR", "REML", n=n,
                                        ci="knha")
    wald = trial_sequential_analysis(effects.yi, effects.vi, effects.years, anticipated, "RR", "REML", n=n,
                                     ci="knha", z_curve="wald")
    for point, plain, year in zip(primary.points, wald.points, sorted(set(effects.years))):
        keep = np.array(effects.years) <= year
        k = int(keep.sum())
        knha = pool_batch(effects.yi[keep], effects.vi[keep], np.array([k]), PoolOptions("REML", ci="knha"))
        z = pool_batch(effects.yi[keep], effects.vi[keep], np.array([k]), PoolOptions("REML", ci="z"))
        # the t-test's two-sided p-value, on the normal scale (one trial: the analysis uses z)
        assert math.isclose(2 * norm_sf(abs(point.z)), knha.p[0], rel_tol=1e-9)
        assert math.isclose(plain.z, z.estimate[0] / z.se[0], rel_tol=1e-12)
        assert np.sign(point.z) == np.sign(plain.z)
        if k > 1:  # Knapp-Hartung's t-test is the more cautious one here
            assert abs(point.z) < abs(plain.z)
    assert primary.diversity == wald.diversity and primary.required == wald.required
    assert (primary.z_test, wald.z_test) == ("knha", "wald") and primary.to_dict()["z_test"] == "knha"
    with pytest.raises(OptionError):
        trial_sequential_analysis(effects.yi, effects.vi, effects.years, anticipated, "RR", "REML", n=n,
                                  z_curve="t")


def test_boundaries_are_those_of_the_information_fractions_and_held_after_the_ris():
    effects, n = bcg()
    result = trial_sequential_analysis(effects.yi, effects.vi, effects.years, AnticipatedEffect.binary(0.3, 0.05),
                                       "RR", "DL", n=n)
    fractions = np.array([p.fraction for p in result.points])
    final = int(np.argmax(fractions >= 1))
    expected = lan_demets_bounds(np.minimum(fractions[: final + 1], 1), 0.05, 2)
    assert np.allclose([p.boundary for p in result.points[: final + 1]], expected, rtol=1e-12)
    assert all(p.boundary == expected[-1] for p in result.points[final:]) and result.final_boundary == expected[-1]


def test_inverse_variance_information_equals_model_information_at_the_latest_update():
    effects, _ = bcg()
    anticipated = AnticipatedEffect.binary(0.3, 0.05)
    result = trial_sequential_analysis(effects.yi, effects.vi, effects.years, anticipated, "RR", "REML",
                                       information="inverse-variance")
    fit = pool_batch(effects.yi, effects.vi, np.array([effects.k]), PoolOptions("REML", qprofile=False))
    zz = (1.959963984540054 + 1.2815515655446004) ** 2
    assert math.isclose(result.fraction, (1 / fit.se[0] ** 2) / (zz / math.log(0.7) ** 2), rel_tol=1e-9)
    assert math.isclose(result.points[-1].information, float(np.sum(1 / effects.vi)), rel_tol=1e-12)


def test_not_yet_verdict_gives_the_share_of_the_required_information():
    effects, n = bcg()
    keep = slice(0, 3)
    result = trial_sequential_analysis(effects.yi[keep], effects.vi[keep], effects.years[keep],
                                       AnticipatedEffect.binary(0.1, 0.05), "RR", "REML", n=n[keep])
    assert result.crossed_at is None and result.fraction < 1
    assert result.verdict == f"not yet: boundary not crossed ({100 * result.fraction:.0f}% of the required information)"
    assert result.final_boundary < result.points[-1].boundary


def test_required_information_reached_without_crossing():
    yi = np.array([0.05, -0.04, 0.02, 0.01])
    vi = np.array([0.01, 0.012, 0.02, 0.015])
    result = trial_sequential_analysis(yi, vi, [2001, 2003, 2003, 2010], AnticipatedEffect.standardised(0.5), "SMD",
                                       "FE", n=[400, 300, 200, 300])
    assert result.diversity == 0 and result.fraction >= 1 and result.crossed_at is None
    assert result.verdict.startswith("no firm evidence: required information reached")
    assert [p.k for p in result.points] == [1, 3, 4]


def test_studies_without_a_year_join_a_last_update_and_diversity_can_be_given():
    yi = np.array([0.3, 0.2, 0.25, 0.1])
    vi = np.array([0.02, 0.03, 0.02, 0.05])
    result = trial_sequential_analysis(yi, vi, [2010, None, 2012, float("nan")], AnticipatedEffect.mean_difference(0.2, 1),
                                       "MD", "REML", n=[100, 80, 120, 60], diversity=0.25)
    assert [p.label for p in result.points] == ["2010", "2012", "year n/a"] and result.points[-1].k == 4
    assert result.diversity == 0.25 and result.diversity_given
    assert math.isclose(result.required, AnticipatedEffect.mean_difference(0.2, 1).participants(0.05, 0.9) / 0.75)


@pytest.mark.parametrize("kwargs, error", [
    ({"n": None}, TSAError),
    ({"n": [100, None, 50]}, TSAError),
    ({"diversity": 1.0}, OptionError),
    ({"information": "sample size"}, OptionError),
    ({"alpha": 0}, OptionError),
    ({"measure": "SMD"}, OptionError),
    ({"years": [2000, 2001]}, TSAError),
])
def test_bad_inputs_raise_typed_errors(kwargs, error):
    args = {"yi": [0.1, 0.2, 0.3], "vi": [0.01, 0.02, 0.03], "years": [2000, 2001, 2002],
            "anticipated": AnticipatedEffect.binary(0.2, 0.1), "measure": "RR", "n": [100, 100, 50]}
    args.update(kwargs)
    with pytest.raises(error):
        trial_sequential_analysis(**args)


def test_json_and_plot_are_deterministic():
    effects, n = bcg()
    result = trial_sequential_analysis(effects.yi, effects.vi, effects.years, AnticipatedEffect.binary(0.3, 0.05),
                                       "RR", "DL", n=n)
    data = json.loads(result.to_json())
    assert data["verdict"] == result.verdict and len(data["points"]) == len(result.points)
    assert data["anticipated"]["description"].startswith("relative risk reduction 30%")
    early = trial_sequential_analysis(effects.yi[:2], effects.vi[:2], effects.years[:2],
                                      AnticipatedEffect.binary(0.05, 0.05), "RR", "DL", n=n[:2])
    assert json.loads(early.to_json())["points"][0]["boundary"] is None  # infinite: no alpha spent yet
    first = figure_bytes(tsa_plot(result, "BCG vaccine"))
    second = figure_bytes(tsa_plot(result, "BCG vaccine"))
    assert first == second and first["png"][:4] == b"\x89PNG"
    assert b"BCG vaccine" in first["svg"] and b"firm evidence: boundary crossed" in first["svg"]
    assert figure_bytes(tsa_plot(early, "early"))["png"][:4] == b"\x89PNG"

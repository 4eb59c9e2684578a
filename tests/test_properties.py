"""Properties of the statistics that hold for any data (hypothesis), not only for metafor's examples.

Effect sizes (``meta.stats.effects``) and pooling (``meta.stats.pooling.pool_batch``): study order does not
matter; swapping treatment and control flips the sign; MD scales with its inputs; tau^2 >= 0; the
CI holds the estimate and widens with the level; FE equals RE when tau^2 = 0; k = 1 and k = 2 work
for every estimator; extreme but valid inputs give finite numbers or a clear error, never a hang
or a NaN reported as a valid result.
"""

import contextlib
import json
import math
import signal

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from meta.cli.main import main
from meta.stats.effects import compute_effects
from meta.stats.options import CI_METHODS, METHODS, EffectOptions, PoolOptions
from meta.stats.pooling import pool_batch

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CORE = ("estimate", "se", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "tau2", "i2", "h2", "q")
CLOSED_FORM = ("FE", "DL", "HE", "HS", "SJ")

effect = st.floats(-3, 3, allow_nan=False)
variance = st.floats(1e-3, 2.0, allow_nan=False)
studies = st.integers(1, 10).flatmap(lambda k: st.tuples(st.lists(effect, min_size=k, max_size=k),
                                                        st.lists(variance, min_size=k, max_size=k)))
method = st.sampled_from(METHODS)
ci = st.sampled_from(CI_METHODS)


class Hang(Exception):
    """A computation that did not finish within its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise Hang in the block after ``seconds`` (a loop that never ends fails instead of blocking)."""
    def stop(signum, frame):
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fit(yi, vi, **options) -> dict:
    """One analysis pooled; its numbers as a dict (plus ``converged``)."""
    with time_limit(5), np.errstate(all="ignore"):
        f = pool_batch(np.asarray(yi, float), np.asarray(vi, float), np.array([len(yi)]), PoolOptions(**options))
    out = {name: float(getattr(f, name)[0]) for name in CORE + ("p", "tau2_ci_lower", "tau2_ci_upper")}
    out["converged"] = bool(f.converged[0])
    return out


def close(a: float, b: float, rel: float = 1e-9, abs_: float = 1e-12) -> bool:
    return (a != a and b != b) or math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def iterative_options(name: str) -> dict:
    """Tight stopping rules, so that rounding, not the stopping rule, bounds the differences."""
    return {} if name in CLOSED_FORM else {"threshold": 1e-12, "maxiter": 2000}


# --- pooling ------------------------------------------------------------------------------------


@FAST
@given(studies, method, ci, st.randoms(use_true_random=False))
def test_pooled_result_does_not_depend_on_study_order(data, method, ci, random):
    yi, vi = data
    order = list(range(len(yi)))
    random.shuffle(order)
    options = {"method": method, "ci": ci, **iterative_options(method)}
    a = fit(yi, vi, **options)
    b = fit([yi[i] for i in order], [vi[i] for i in order], **options)
    # Fisher scoring can oscillate without converging (metafor too); such fits are flagged, not compared
    assume(a["converged"] and b["converged"])
    # PM and the Q-profile stop at R's uniroot tolerance (absolute, ~1.2e-4 on tau^2)
    tol = 1e-6 if method in CLOSED_FORM + ("REML", "ML", "EB") else 1e-3
    for name in CORE:
        assert close(a[name], b[name], rel=tol, abs_=tol), (name, a[name], b[name])


@FAST
@given(studies, method, ci)
def test_tau2_is_never_negative(data, method, ci):
    result = fit(*data, method=method, ci=ci)
    if result["converged"]:
        assert result["tau2"] >= 0
        assert 0 <= result["i2"] <= 100
        assert result["h2"] >= 1 or method == "FE"
    else:
        assert method in ("REML", "ML", "EB", "PM")
    lo, hi = result["tau2_ci_lower"], result["tau2_ci_upper"]
    assert (lo != lo) or 0 <= lo <= hi


@FAST
@given(studies, method, ci)
def test_interval_contains_estimate_and_widens_with_level(data, method, ci):
    widths = []
    for level in (80.0, 90.0, 95.0, 99.0):
        r = fit(*data, method=method, ci=ci, level=level)
        if not r["converged"]:
            return
        assert r["ci_lower"] <= r["estimate"] <= r["ci_upper"]
        assert r["pi_lower"] <= r["ci_lower"] and r["ci_upper"] <= r["pi_upper"]
        widths.append(r["ci_upper"] - r["ci_lower"])
    assert widths == sorted(widths)


@FAST
@given(studies, method, ci)
def test_random_effects_equal_fixed_effect_when_tau2_is_zero(data, method, ci):
    yi, vi = data
    for values in (yi, [yi[0]] * len(yi)):  # the data as drawn, and homogeneous data (tau^2 = 0)
        fe = fit(values, vi, method="FE", ci=ci)
        re = fit(values, vi, method=method, ci=ci)
        if values is not yi:  # zero up to the rounding of the mean (SJ gives ~1e-90 there)
            assert re["tau2"] <= 1e-12 * min(vi)
        if re["tau2"] <= 1e-12 * min(vi):
            for name in ("estimate", "se", "ci_lower", "ci_upper"):
                assert close(re[name], fe[name]), (name, re[name], fe[name])


@pytest.mark.parametrize("ci", CI_METHODS)
@pytest.mark.parametrize("method", METHODS)
def test_one_and_two_studies_work_for_every_method(method, ci):
    one = fit([0.4], [0.04], method=method, ci=ci)
    assert one["estimate"] == 0.4 and close(one["se"], 0.2) and one["tau2"] == 0 and one["i2"] == 0
    assert close(one["ci_lower"], 0.4 - 1.959963984540054 * 0.2)
    for yi in ([0.4, 0.4], [0.4, -0.6], [0.0, 2.5]):
        two = fit(yi, [0.04, 0.09], method=method, ci=ci)
        assert two["converged"] and all(math.isfinite(two[n]) for n in CORE), two
        assert min(yi) - 1e-12 <= two["estimate"] <= max(yi) + 1e-12


@FAST
@given(studies, method, ci, st.floats(0.2, 5.0))
def test_scaling_the_effects_scales_the_result(data, method, ci, c):
    yi, vi = data
    options = {"method": method, "ci": ci, **iterative_options(method)}
    a = fit(yi, vi, **options)
    b = fit([c * y for y in yi], [c * c * v for v in vi], **options)
    if not (a["converged"] and b["converged"]):
        return
    tol = 1e-6 if method != "PM" else 2e-3
    for name in ("estimate", "ci_lower", "ci_upper", "se"):
        assert close(b[name], c * a[name], rel=tol, abs_=tol * c * a["se"]), (name, b[name], c * a[name])
    assert close(b["tau2"], c * c * a["tau2"], rel=tol, abs_=(1e-3 if method == "PM" else 1e-9) * (1 + c * c))


# --- effect sizes -------------------------------------------------------------------------------


def effects_of(rows: list[dict], measure: str, **options):
    frame = pd.DataFrame(rows, dtype=float)
    frame.insert(0, "study", [f"S{i}" for i in range(len(rows))])
    frame.index = pd.RangeIndex(1, len(rows) + 1)
    return compute_effects(frame, EffectOptions(measure, **options))


def binary_row(draw):
    n_treat, n_ctrl = draw(st.integers(1, 400)), draw(st.integers(1, 400))
    return {"events_treat": draw(st.integers(0, n_treat)), "n_treat": n_treat,
            "events_ctrl": draw(st.integers(0, n_ctrl)), "n_ctrl": n_ctrl}


@st.composite
def binary_rows(draw):
    return [binary_row(draw) for _ in range(draw(st.integers(1, 6)))]


@st.composite
def continuous_rows(draw):
    number = st.floats(-50, 50, allow_nan=False)
    sd = st.floats(0.1, 30, allow_nan=False)
    return [{"mean_treat": draw(number), "sd_treat": draw(sd), "n_treat": draw(st.integers(2, 300)),
             "mean_ctrl": draw(number), "sd_ctrl": draw(sd), "n_ctrl": draw(st.integers(2, 300))}
            for _ in range(draw(st.integers(1, 6)))]


def swapped(row: dict) -> dict:
    return {key.replace("_treat", "_tmp").replace("_ctrl", "_treat").replace("_tmp", "_ctrl"): value
            for key, value in row.items()}


@FAST
@given(binary_rows(), st.sampled_from(("RR", "OR", "RD")), method)
def test_swapping_arms_flips_binary_effects(rows, measure, method):
    a = effects_of(rows, measure)
    b = effects_of([swapped(r) for r in rows], measure)
    np.testing.assert_allclose(b.yi, -a.yi, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.vi, a.vi, rtol=1e-12)
    pa, pb = fit(a.yi, a.vi, method=method), fit(b.yi, b.vi, method=method)
    assert close(pb["estimate"], -pa["estimate"], rel=1e-7, abs_=1e-9)
    assert close(pb["ci_lower"], -pa["ci_upper"], rel=1e-7, abs_=1e-9)


@FAST
@given(continuous_rows(), st.sampled_from(("MD", "SMD")), st.sampled_from(("unequal", "pooled")))
def test_swapping_arms_flips_continuous_effects(rows, measure, md_variance):
    a = effects_of(rows, measure, md_variance=md_variance)
    b = effects_of([swapped(r) for r in rows], measure, md_variance=md_variance)
    np.testing.assert_allclose(b.yi, -a.yi, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.vi, a.vi, rtol=1e-12)


@FAST
@given(continuous_rows(), st.floats(0.01, 100.0), st.sampled_from(("unequal", "pooled")), method)
def test_scaling_md_inputs_scales_the_pooled_md(rows, c, md_variance, method):
    scaled = [{k: (v * c if k.startswith(("mean", "sd")) else v) for k, v in r.items()} for r in rows]
    a = effects_of(rows, "MD", md_variance=md_variance)
    b = effects_of(scaled, "MD", md_variance=md_variance)
    np.testing.assert_allclose(b.yi, c * a.yi, rtol=1e-10, atol=1e-12 * c)
    np.testing.assert_allclose(b.vi, c * c * a.vi, rtol=1e-10)
    options = {"method": method, **iterative_options(method)}
    pa, pb = fit(a.yi, a.vi, **options), fit(b.yi, b.vi, **options)
    if method == "PM" or not (pa["converged"] and pb["converged"]):
        return  # PM's root is found to an absolute tolerance; scaling is checked above at c <= 5
    for name in ("estimate", "ci_lower", "ci_upper"):
        assert close(pb[name], c * pa[name], rel=1e-6, abs_=1e-6 * c * pa["se"]), name
    assert close(pb["tau2"], c * c * pa["tau2"], rel=1e-5, abs_=1e-9 * c * c * (1 + pa["tau2"]))


@FAST
@given(continuous_rows())
def test_smd_does_not_change_with_the_scale(rows):
    scaled = [{k: (v * 7.5 if k.startswith(("mean", "sd")) else v) for k, v in r.items()} for r in rows]
    a, b = effects_of(rows, "SMD"), effects_of(scaled, "SMD")
    np.testing.assert_allclose(b.yi, a.yi, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.vi, a.vi, rtol=1e-9)


# --- extreme but valid inputs -------------------------------------------------------------------

extreme_variance = st.sampled_from([1e-12, 1e-6, 1e-3, 1.0, 1e3, 1e6])
extreme = st.integers(1, 6).flatmap(lambda k: st.tuples(
    st.lists(st.sampled_from([0.0, 1e-6, 0.3, -2.0, 8.0]), min_size=k, max_size=k),
    st.lists(extreme_variance, min_size=k, max_size=k)))


@pytest.mark.parametrize("method", METHODS)
@FAST
@given(extreme, ci)
@example(([0.3, 0.5], [1e-12, 1e6]), "z")  # REML gave tau2 = inf and "converged" (fixed in pooling.py)
@example(([0.0, 1e-6], [1e-6, 1e3]), "z")  # REML halved an infinite step forever, a hang (fixed)
def test_extreme_variances_give_finite_results_or_say_they_did_not_converge(method, data, ci):
    result = fit(*data, method=method, ci=ci)
    if result["converged"]:
        assert all(math.isfinite(result[name]) for name in CORE), result
        assert result["tau2"] >= 0


def sheet_text(rows: list[dict]) -> str:
    columns = list(rows[0])
    return "\n".join(["study," + ",".join(columns)]
                     + [f"S{i}," + ",".join(repr(r[c]) for c in columns) for i, r in enumerate(rows)]) + "\n"


@st.composite
def extreme_binary_rows(draw):
    def arm(prefix):
        n = draw(st.sampled_from([1, 2, 10, 1000, 10**6]))
        return {f"events_{prefix}": draw(st.sampled_from([0, n, n // 2])), f"n_{prefix}": n}
    return [{**arm("treat"), **arm("ctrl")} for _ in range(draw(st.integers(1, 5)))]


@settings(max_examples=25, deadline=None)
@given(extreme_binary_rows(), st.sampled_from(("RR", "OR", "RD")),
       method, st.sampled_from(("keep", "drop")))
def test_events_zero_or_all_give_a_result_or_a_clear_error(tmp_path_factory, rows, measure, method, zero_cells):
    """Through ``meta pool``: exit 0 with finite numbers, or exit 1 with a message; never a traceback."""
    path = tmp_path_factory.mktemp("extreme") / "sheet.csv"
    path.write_text(sheet_text(rows))
    with time_limit(10):
        result = CliRunner().invoke(main, ["pool", str(path), "--measure", measure, "--method", method,
                                           "--zero-cells", zero_cells, "--json"])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 0:
        data = json.loads(result.stdout)
        assert all(data[name] is not None for name in ("estimate", "se", "ci_lower", "ci_upper", "tau2"))
    else:
        assert str(path) in result.stderr


@pytest.mark.parametrize("method", METHODS)
def test_pool_refuses_to_report_a_non_finite_result(tmp_path, method):
    """A fit that cannot give finite numbers exits 1 with a message, not a JSON of nulls."""
    path = tmp_path / "sheet.csv"
    path.write_text("study,yi,vi\nA,0.3,1e-12\nB,0.5,1e6\n")
    result = CliRunner().invoke(main, ["pool", str(path), "--measure", "GEN", "--method", method, "--json"])
    assert result.exit_code in (0, 1)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 0:
        data = json.loads(result.stdout)
        assert data["estimate"] == pytest.approx(0.3) and data["se"] is not None
    else:
        assert str(path) in result.stderr and "not finite" in result.stderr

"""Worked examples of Normand (1999), 'Meta-analysis: formulating, evaluating, combining, and
reporting', Stat Med 18:321-359 (doi 10.1002/(SICI)1097-0258(19990215)18:3<321::AID-SIM28>3.0.CO;2-P).

Expected numbers are the paper's, as printed in its tables (page and table next to each); they
are the numbers metafor's tests/testthat/test_analysis_example_normand1999.r checks against.
Example 1: prophylactic lidocaine (Hine et al. 1989), risk differences in percentage points.
Example 2: length of hospital stay after stroke, mean differences with the pooled SD.
"""

import numpy as np
import pytest

from meta.sheets.analyses import pool_sheet
from meta.sheets.load import check_effect_table, load_sheet
from meta.stats.effects import compute_effects
from meta.stats.options import EffectOptions, PoolOptions

from .conftest import REFERENCE

HINE = REFERENCE / "datasets" / "hine_rd.csv"
NORMAND = REFERENCE / "datasets" / "normand_md.csv"


def effects(path, options):
    frame, _ = load_sheet(path)
    typed, problems = check_effect_table(frame, str(path), options.measure)
    assert problems == []
    return compute_effects(typed, options)


def test_lidocaine_risk_differences_table_iii_page_330():
    es = effects(HINE, EffectOptions("RD"))
    np.testing.assert_array_equal(np.round(es.yi * 100, 4), [2.8026, 0.0000, 1.9711, 1.7961, 3.5334, 4.4031])
    np.testing.assert_array_equal(np.round(es.vi * 100**2, 4), [17.7575, 37.5657, 8.1323, 10.8998, 8.0114, 6.1320])
    half = 1.959963984540054 * np.sqrt(es.vi * 100**2)
    np.testing.assert_array_equal(np.round(es.yi * 100 - half, 1), [-5.5, -12.0, -3.6, -4.7, -2.0, -0.5])
    np.testing.assert_array_equal(np.round(es.yi * 100 + half, 1), [11.1, 12.0, 7.6, 8.3, 9.1, 9.3])


@pytest.mark.parametrize("method", ["FE", "REML", "DL"])
def test_lidocaine_pooled_table_vii_page_349(method):
    r = pool_sheet(HINE, EffectOptions("RD"), PoolOptions(method=method))
    assert round(r.estimate * 100, 2) == 2.94
    assert round(r.ci_lower * 100, 1) == 0.4
    assert round(r.ci_upper * 100, 1) == 5.5
    assert round(r.tau2 * 100**2, 3) == 0.0


def test_length_of_stay_mean_differences_table_viii_page_351():
    es = effects(NORMAND, EffectOptions("MD", md_variance="pooled"))
    np.testing.assert_array_equal(es.yi, [-20, -2, -55, -71, -4, 1, 11, -10, 7])
    np.testing.assert_array_equal(np.round(es.vi, 2), [40.59, 2.05, 15.28, 150.22, 20.19, 1.22, 95.38, 8.03, 20.69])


@pytest.mark.parametrize("method, estimate, lower, upper, tau2", [
    ("FE", -3.49, -5.03, -1.96, 0.0),          # Table IX, page 352
    ("DL", -14.10, -24.45, -3.75, 218.72),     # Table IX, page 352
    ("REML", -15.12, -32.67, 2.43, 685.20),    # Table IX, page 352
])
def test_length_of_stay_pooled_table_ix_page_352(method, estimate, lower, upper, tau2):
    r = pool_sheet(NORMAND, EffectOptions("MD", md_variance="pooled"), PoolOptions(method=method))
    assert round(r.estimate, 2) == estimate
    assert round(r.ci_lower, 2) == lower
    assert round(r.ci_upper, 2) == upper
    assert round(r.tau2, 2) == tau2

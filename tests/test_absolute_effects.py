"""Absolute effects per 1,000 from a sourced baseline risk (GRADE summary-of-findings style)."""

import pytest

from meta.errors import SpecError
from meta.publish.living import absolute_effect
from meta.sheets.specs import load_spec

from .conftest import ROOT


def test_risk_ratio_per_thousand():
    # 10% baseline risk, RR 0.49 (0.39 to 0.61): 100 -> 49 (39 to 61) per 1,000
    assert absolute_effect("RR", 0.10, 0.49, 0.39, 0.61) == "100 \u2192 49 (39 to 61)"
    assert absolute_effect("HR", 0.20, 0.5, 0.25, 1.0) == "200 \u2192 100 (50 to 200)"


def test_odds_ratio_goes_through_the_odds():
    # OR 2 at baseline 0.2: odds 0.25 -> 0.5, risk 1/3 -> 333 per 1,000
    assert absolute_effect("OR", 0.20, 2.0, 1.0, 4.0) == "200 \u2192 333 (200 to 500)"


def test_other_measures_have_no_absolute_effect():
    assert absolute_effect("SMD", 0.2, -0.3, -0.5, -0.1) == ""


def test_a_baseline_risk_needs_its_source(tmp_path):
    (tmp_path / "analyses").mkdir()
    text = (ROOT / "analyses/depression.toml").read_text()
    spec = tmp_path / "analyses/x.toml"
    spec.write_text("baseline_risk = 0.1\n" + text)
    (tmp_path / "extraction/depression").mkdir(parents=True)
    with pytest.raises(SpecError, match="baseline_risk_source"):
        load_spec(spec, tmp_path)
    spec.write_text('baseline_risk = 1.5\nbaseline_risk_source = "x"\n' + text)
    with pytest.raises(SpecError, match="between 0 and 1"):
        load_spec(spec, tmp_path)
    spec.write_text('baseline_risk = 0.1\nbaseline_risk_source = "Table 1 of X"\n' + text)
    assert load_spec(spec, tmp_path).baseline_risk == 0.1

"""The public API as a user meets it: ``import meta`` and the names of its ``__all__``, against metafor's
reference values (reference/metafor_reference.csv, written by reference/make_reference.R)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

import meta
from meta.cli.main import main

from .conftest import REFERENCE, ROOT

METAFOR = pd.read_csv(REFERENCE / "metafor_reference.csv", dtype={"options": str}, keep_default_na=False)
BCG = REFERENCE / "datasets" / "bcg_rr.csv"
FIELDS = ("estimate", "se", "ci_lower", "ci_upper", "p", "pi_lower", "pi_upper", "tau2", "tau2_ci_lower",
          "tau2_ci_upper", "i2", "h2", "q", "q_p")


def metafor_row(dataset: str, method: str, ci: str) -> pd.Series:
    rows = METAFOR[(METAFOR.dataset == dataset) & (METAFOR.method == method) & (METAFOR.ci == ci)
                   & (METAFOR.options == "")]
    assert len(rows) == 1
    return rows.iloc[0]


def test_import_meta_exposes_the_documented_names_lazily():
    code = "import sys, meta; print(sorted(m for m in sys.modules if m.startswith('meta')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['meta', 'meta._version']"  # nothing heavy on import
    assert set(dir(meta)) == set(meta.__all__)
    for name in ("pool", "bias", "metareg", "read_sheet", "Review", "PoolResult", "MetaError", "SheetError"):
        assert name in meta.__all__ and getattr(meta, name).__doc__
    with pytest.raises(AttributeError):
        meta.no_such_name


@pytest.mark.parametrize("method,ci", [("REML", "knha"), ("REML", "z"), ("DL", "z"), ("PM", "knha"), ("FE", "z")])
def test_pool_of_a_dataframe_agrees_with_metafor(method, ci):
    frame = pd.read_csv(BCG)
    result = meta.pool(frame, measure="RR", method=method, ci=ci)
    expected = metafor_row("bcg_rr", method, ci)
    assert isinstance(result, meta.PoolResult) and result.k == 13
    for name in FIELDS:
        if expected[name] == "":
            continue
        assert math.isclose(getattr(result, name), float(expected[name]), rel_tol=1e-6, abs_tol=1e-12), name


def test_path_and_dataframe_give_the_same_json_as_the_cli():
    from_path = meta.pool(BCG, measure="RR").to_dict()
    from_frame = meta.pool(pd.read_csv(BCG), measure="RR").to_dict()
    cli = CliRunner().invoke(main, ["pool", str(BCG), "--measure", "RR", "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output) == from_path
    for name in FIELDS:
        assert from_frame[name] == from_path[name]


def test_level_as_a_probability_or_a_percentage():
    assert meta.pool(BCG, measure="RR", level=0.9).to_dict() == meta.pool(BCG, measure="RR", level=90).to_dict()
    with pytest.raises(meta.OptionError, match="level"):
        meta.pool(BCG, measure="RR", level=1.5e3)


def test_repr_html_frame_and_studies():
    result = meta.pool(BCG, measure="RR")
    assert repr(result) == "PoolResult(RR 0.49 [0.33, 0.73], k=13, REML+KH, I\u00b2=92%)"
    assert len(repr(result).splitlines()) <= 3
    html = result._repr_html_()
    assert html.startswith("<table") and "Knapp-Hartung" in html and "0.49" in html
    frame = result.to_frame()
    assert list(frame.columns[:4]) == ["k", "measure", "method", "ci_method"]
    assert math.isclose(frame.loc[0, "estimate_exp"], math.exp(result.estimate))
    assert math.isclose(frame.loc[0, "ci_upper_exp"], math.exp(result.ci_upper))
    studies = result.studies()
    assert list(studies.columns) == ["study", "yi", "vi", "weight", "estimate", "ci_lower", "ci_upper"]
    assert math.isclose(studies["weight"].sum(), 100.0, rel_tol=1e-12)
    aronson = studies.iloc[0]
    assert aronson["study"] == "Aronson 1948"
    # metafor: escalc("RR", ai = 4, n1i = 123, ci = 11, n2i = 139) -> yi -0.8893, vi 0.3256 (dat.bcg row 1)
    assert math.isclose(aronson["estimate"], math.exp(-0.88931133392020545), rel_tol=1e-12)
    assert math.isclose(aronson["ci_lower"], math.exp(-0.88931133392020545 - 1.959963984540054 * math.sqrt(0.32558476500396133)),
                        rel_tol=1e-9)
    assert "Random-effects model (k = 13" in result.summary()


def test_difference_measures_have_no_exp_columns():
    result = meta.pool(REFERENCE / "datasets" / "normand_md.csv", measure="MD")
    assert not any(c.endswith("_exp") for c in result.to_frame().columns)
    assert result.studies()["estimate"].tolist() == pytest.approx(list(result.yi))


def test_forest_returns_a_figure_and_writes_png_or_svg(tmp_path):
    result = meta.pool(BCG, measure="RR")
    figure = result.forest(tmp_path / "forest.png", title="BCG")
    assert hasattr(figure, "savefig")
    assert (tmp_path / "forest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result.forest(tmp_path / "forest.svg")
    assert b"<svg" in (tmp_path / "forest.svg").read_bytes()[:400]
    with pytest.raises(meta.OptionError, match=".png or .svg"):
        result.forest(tmp_path / "forest.pdf")


def test_bad_input_raises_meta_error_naming_row_and_column():
    frame = pd.read_csv(BCG)
    frame.loc[0, "events_treat"] = 1000  # more events than people (Aronson 1948: 123)
    with pytest.raises(meta.SheetError) as caught:
        meta.pool(frame, measure="RR")
    problem = caught.value.problems[0]
    assert isinstance(caught.value, meta.MetaError)
    assert (problem.file, problem.row, problem.column) == ("<DataFrame>", 1, "events_treat")
    assert problem.fix
    with pytest.raises(meta.MetaError, match="DataFrame or the path"):
        meta.pool(42, measure="RR")
    with pytest.raises(meta.OptionError, match="measure"):
        meta.pool(frame, measure="XYZ")
    with pytest.raises(meta.OptionError, match="unknown option"):
        meta.pool(frame, measure="RR", zero_cell="drop")


def test_where_filters_rows_and_names_a_missing_column():
    result = meta.pool(BCG, measure="RR", where={"year": [1948, 1949]})
    assert result.labels == ("Aronson 1948", "Ferguson & Simes 1949")
    with pytest.raises(meta.SheetError, match="problem"):
        meta.pool(BCG, measure="RR", where={"latitude": 40})


def test_bias_and_metareg_to_dict_equal_the_cli_json():
    bias = meta.bias(BCG, measure="RR", ci="z")
    cli = CliRunner().invoke(main, ["bias", str(BCG), "--measure", "RR", "--ci", "z", "--json"])
    assert json.loads(cli.output) == bias.to_dict()
    bcg = REFERENCE / "metareg" / "bcg.csv"
    regression = meta.metareg(bcg, measure="GEN", mods=["ablat"])
    cli = CliRunner().invoke(main, ["metareg", str(bcg), "--measure", "GEN", "--mod", "ablat", "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output) == regression.to_dict()


def test_read_sheet_gives_text_cells_numbered_as_a_spreadsheet():
    frame = meta.read_sheet(BCG)
    assert frame.index[0] == 1 and frame.loc[1, "study"] == "Aronson 1948" and frame.loc[1, "n_treat"] == "123"


def test_review_pools_a_spec_exactly_as_meta_run(tmp_path):
    review = meta.Review(ROOT)
    result = review.pool("depression")
    published = json.loads((ROOT / "analyses" / "output" / "depression" / "analysis.json").read_text())
    for name in ("k", "estimate", "ci_lower", "ci_upper", "tau2"):
        assert result.to_dict()[name] == pytest.approx(published["result"][name], rel=1e-12)
    assert result.headline() == "SMD -0.26 [-0.50, -0.02]"
    assert review.pool("depression", ci="z").ci_method == "z"
    with pytest.raises(meta.SpecError, match="known: "):
        review.pool("no-such-analysis")
    assert review.validate().ok and review.validate().to_dict()["specs"] >= 10


def test_the_api_reference_builds_offline_with_every_public_name(tmp_path):
    """`make docs` runs pdoc on the package: every name of meta.__all__ gets its documented entry."""
    pdoc = pytest.importorskip("pdoc")
    pdoc.pdoc("meta", output_directory=tmp_path)
    page = (tmp_path / "meta.html").read_text(encoding="utf-8")
    for name in meta.__all__:
        if not name.startswith("__"):
            assert f'id="{name}"' in page, name
    assert "Knapp-Hartung" in page


def test_metafor_column_names_and_author_year_labels():
    """dat.bcg as metafor names it (tpos/tneg/cpos/cneg, or ai/n1i/ci/n2i; author + year) pools as our sheet does,
    and its moderator column stays usable."""
    ours = pd.read_csv(BCG)
    latitude = pd.read_csv(REFERENCE / "metareg" / "bcg.csv")["ablat"]
    authors = [s.rsplit(" ", 1)[0] for s in ours.study]
    metafor = pd.DataFrame({"author": authors, "year": ours.year, "tpos": ours.events_treat,
                            "tneg": ours.n_treat - ours.events_treat, "cpos": ours.events_ctrl,
                            "cneg": ours.n_ctrl - ours.events_ctrl, "ablat": latitude})
    cells = pd.DataFrame({"author": authors, "year": ours.year, "ai": ours.events_treat, "n1i": ours.n_treat,
                          "ci": ours.events_ctrl, "n2i": ours.n_ctrl})
    expected = meta.pool(BCG, measure="RR").to_dict()
    for frame in (metafor, cells):
        result = meta.pool(frame, measure="RR").to_dict()
        assert result["studies"] == expected["studies"]  # "Author Year", as the sheet labels them
        assert result["estimate"] == expected["estimate"] and result["tau2"] == expected["tau2"]
    regression = meta.metareg(metafor, measure="RR", moderators=["ablat"])
    assert regression.coefficient("ablat").estimate == pytest.approx(
        meta.metareg(REFERENCE / "metareg" / "bcg.csv", measure="GEN", mods=["ablat"]).coefficient("ablat").estimate,
        rel=1e-9)


def test_repeated_author_year_labels_get_letters():
    frame = pd.DataFrame({"author": ["Smith", "Smith", "Jones"], "year": [2001, 2001, 2003],
                          "yi": [0.1, 0.2, 0.3], "vi": [0.01, 0.02, 0.03]})
    assert meta.pool(frame, measure="GEN").labels == ("Smith 2001a", "Smith 2001b", "Jones 2003")


def test_plot_texts_say_p_below_and_never_minus_zero():
    from dataclasses import replace

    from meta.publish.plots import fmt_ci, heterogeneity_text

    result = meta.pool(BCG, measure="RR")  # Q = 152.2 on 12 df: p far below 0.001
    assert heterogeneity_text(result).endswith("p < 0.001")
    difference = replace(meta.pool(REFERENCE / "datasets" / "normand_md.csv", measure="MD"), measure="MD")
    assert fmt_ci(difference, -0.4, -0.79, -0.004) == "-0.40 [-0.79, 0.00]"

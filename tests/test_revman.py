"""`meta import FILE.rm5`: a RevMan 5 file round-trips into sheets and specs.

The file (tests/revman_fixture.py) states, for each outcome and subgroup, pooled results that
metafor computed; after the import, `meta run` must publish those numbers (to the file's printed
precision), except for the Mantel-Haenszel outcome, which the engine pools by inverse variance
and the import says so.
"""

import csv
import hashlib
import json
import math

import pytest
from click.testing import CliRunner

from meta.cli.main import main
from meta.cli.review import import_command
from meta.interop.importing import ImportFileError
from meta.interop.revman import import_revman, read_revman
from meta.interop.scaffold import init_review

from .revman_fixture import BCG_MH, BCG_OTHER, BCG_RANDOM, build_rm5, dataset, reference

EXPECTED = {  # analysis -> (metafor result the file states, ratio measure)
    "test-c1-o1": (reference("bcg_rr", "DL"), True),
    "test-c2-o1": (reference("nielweise_rr_drop00", "FE"), True),
    "test-c3-o1": (reference("normand_md", "DL"), False),
    "test-c4-o1": (reference("hackshaw_or_ci", "FE"), True),
}


def invoke(command, *args):
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def snapshot(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock")}


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    root = tmp_path_factory.mktemp("revman")
    init_review(root, "Imported review", "2026-01-01")
    rm5 = root / "test.rm5"
    rm5.write_text(build_rm5())
    imported = invoke(import_command, rm5, "--root", root, "--date", "2026-01-02")
    assert imported.exit_code == 0, imported.output
    ran = invoke(main, "run", "--root", root, "--date", "2026-01-03")
    assert ran.exit_code == 0, ran.output
    return root, imported.output


def record(root, name):
    return json.loads((root / "analyses/output" / name / "analysis.json").read_text())


def test_every_outcome_is_imported_and_validates(review):
    root, output = review
    specs = sorted(p.stem for p in (root / "analyses").glob("test-*.toml"))
    assert specs == ["test-c1-o1", "test-c1-o2", "test-c2-o1", "test-c3-o1", "test-c4-o1"]
    assert invoke(main, "validate", "--root", root).exit_code == 0
    assert "1.1 Tuberculosis: agrees" in output
    assert output.count(": agrees") == 6  # four outcomes and two subgroups
    assert (root / "extraction/test/IMPORT_REPORT.md").read_text() in output


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pooled_results_equal_what_the_file_states(review, name):
    root, _ = review
    stated, ratio = EXPECTED[name]
    result = record(root, name)["result"]
    suffix = "_exp" if ratio else ""
    for field in ("estimate", "ci_lower", "ci_upper"):
        expected = math.exp(stated[field]) if ratio else stated[field]
        assert math.isclose(result[field + suffix], expected, rel_tol=1e-9), field
    assert abs(result["i2"] - round(stated["i2"], 2)) <= 0.005  # the file prints I2 with two decimals
    assert math.isclose(result["q"], stated["q"], rel_tol=1e-9)
    if result["method"] == "DL":
        assert math.isclose(result["tau2"], stated["tau2"], rel_tol=1e-9)


def test_subgroups_and_the_review_model_are_kept(review):
    root, _ = review
    rec = record(root, "test-c1-o1")
    assert rec["method"] == "DL" and rec["ci_method"] == "z" and rec["subgroup"] == "subgroup"
    subgroups = {s["level"]: s for s in rec["subgroups"]}
    for level, stated in (("Random allocation", BCG_RANDOM), ("Alternate or systematic allocation", BCG_OTHER)):
        assert math.isclose(subgroups[level]["estimate"], math.exp(stated["estimate"]), rel_tol=1e-9)
        assert math.isclose(subgroups[level]["ci_lower"], math.exp(stated["ci_lower"]), rel_tol=1e-9)
        assert abs(subgroups[level]["i2"] - round(stated["i2"], 2)) <= 0.005
    assert {s["k"] for s in rec["subgroups"]} == {7, 6}
    assert record(root, "test-c4-o1")["method"] == "FE"
    spec = (root / "analyses/test-c2-o1.toml").read_text()
    assert 'zero_cells = "drop"' in spec and 'method = "FE"' in spec and 'ci = "z"' in spec
    assert record(root, "test-c2-o1")["result"]["dropped"]  # the double-zero trial, as RevMan


def test_mantel_haenszel_is_pooled_by_inverse_variance_and_said_so(review):
    root, output = review
    result = record(root, "test-c1-o2")["result"]
    fixed = reference("bcg_rr", "FE")
    assert result["method"] == "FE"
    assert math.isclose(result["estimate"], fixed["estimate"], rel_tol=1e-9)
    assert not math.isclose(result["estimate"], BCG_MH["estimate"], rel_tol=1e-3)
    spec = (root / "analyses/test-c1-o2.toml").read_text()
    assert "Mantel-Haenszel" in spec and "inverse variance" in spec
    assert "1.2 Tuberculosis (Mantel-Haenszel): differs (expected" in output
    assert "divergence: RevMan pooled this outcome with Mantel-Haenszel weights" in output


def test_rows_keep_names_and_quote_the_file_verbatim(review):
    root, _ = review
    text = (root / "test.rm5").read_text()
    sheets = sorted((root / "extraction/test").glob("*.csv"))
    assert len(sheets) == 4
    rows = [row for sheet in sheets for row in csv.DictReader(sheet.open())]
    for row in rows:
        assert row["quote"] in text and row["quote"].startswith(("<DICH_DATA", "<CONT_DATA", "<IV_DATA"))
        assert row["source_location"].startswith("RevMan file test.rm5, comparison ")
        assert row["source_url"] == "https://doi.org/10.1002/14651858.CD999999"
    bcg = {r["study"] for r in rows if r["outcome"] == "tuberculosis"}
    assert bcg == {r["study"] for r in dataset("bcg_rr")}
    aronson = next(r for r in rows if r["study"] == "Aronson 1948" and r["outcome"] == "tuberculosis")
    assert aronson["subgroup"] == "Random allocation" and aronson["year"] == "1948"
    assert "comparison 1 'BCG vaccine versus no vaccine', outcome 1.1 'Tuberculosis', subgroup 'Random allocation'" \
        in aronson["source_location"]
    studies = {r["study_id"]: r for r in csv.DictReader((root / "extraction/studies.csv").open())}
    assert studies["hartsutherland1977"]["cohort"] == "Hart & Sutherland 1977"


def test_importing_again_changes_nothing(review):
    root, _ = review
    before = snapshot(root)
    again = invoke(import_command, root / "test.rm5", "--root", root)
    assert again.exit_code == 1 and "already in the project" in again.output
    assert snapshot(root) == before


def test_a_bad_row_undoes_the_whole_import(tmp_path):
    init_review(tmp_path, "Bad", "2026-01-01")
    before = snapshot(tmp_path)
    rm5 = tmp_path / "bad.rm5"
    rm5.write_text(build_rm5().replace('EVENTS_1="4" EVENTS_2="11"', 'EVENTS_1="400" EVENTS_2="11"', 1))
    result = invoke(import_command, rm5, "--root", tmp_path)
    assert result.exit_code == 1 and "events_treat (400) is larger than n_treat (123)" in result.output
    after = snapshot(tmp_path)
    after.pop("bad.rm5")
    assert after == before


@pytest.mark.parametrize("text, message", [
    ("<x/>", "not a RevMan 5 review"),
    ("<COCHRANE_REVIEW", "not a readable RevMan 5 file"),
    ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
     "<COCHRANE_REVIEW>&b;</COCHRANE_REVIEW>", "not a readable RevMan 5 file"),
    ("<COCHRANE_REVIEW/>", "no dichotomous, continuous or generic inverse-variance outcome"),
])
def test_files_that_are_not_revman_reviews_are_refused(tmp_path, text, message):
    init_review(tmp_path / "r", "R", "2026-01-01")
    rm5 = tmp_path / "x.rm5"
    rm5.write_text(text)
    result = invoke(import_command, rm5, "--root", tmp_path / "r")
    assert result.exit_code == 1 and message in result.output, result.output


def test_not_a_review_folder_and_spreadsheet_options_are_refused(tmp_path):
    rm5 = tmp_path / "t.rm5"
    rm5.write_text(build_rm5())
    with pytest.raises(ImportFileError, match="meta init"):
        import_revman(rm5, tmp_path, "2026-01-01")
    init_review(tmp_path / "r", "R", "2026-01-01")
    result = invoke(import_command, rm5, "--root", tmp_path / "r", "--outcome", "x")
    assert result.exit_code == 1 and "are for spreadsheets" in result.output


def test_reader_sees_the_structure(tmp_path):
    (tmp_path / "t.rm5").write_text(build_rm5())
    review = read_revman(tmp_path / "t.rm5")
    assert review.title == "Four classic meta-analyses (test review)"
    kinds = [(o.kind, o.attrs["EFFECT_MEASURE"], o.attrs.get("METHOD"), o.attrs["RANDOM"]) for o in review.outcomes]
    assert kinds == [("DICH", "RR", "IV", "YES"), ("DICH", "RR", "MH", "NO"), ("DICH", "RR", "IV", "NO"),
                     ("CONT", "MD", "IV", "YES"), ("IV", "OR", None, "NO")]
    assert [name for name, _ in review.outcomes[0].subgroups] == ["Random allocation",
                                                                  "Alternate or systematic allocation"]
    assert review.studies["STD-Hart-_x0026_-Sutherland-1977"] == ("Hart & Sutherland 1977", "1977")


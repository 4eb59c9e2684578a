"""The shipped evidence: sheets agree with the dictionary, every number is in its quote, specs run."""

import csv
import shutil

import pandas as pd
from click.testing import CliRunner

from meta.cli.main import main
from meta.sheets.evidence import (
    check_evidence_sheet,
    load_dictionary,
    quote_numbers,
    sheet_paths,
    validate_project,
)
from meta.sheets.load import load_sheet
from meta.sheets.specs import load_specs

from .conftest import ROOT


def test_shipped_evidence_validates():
    report = validate_project(ROOT)
    assert report.problems == [], "\n".join(map(str, report.problems[:20]))
    assert report.sheets >= 4 and report.rows >= 100


def test_cli_validate_exit_code_zero_on_shipped_evidence():
    result = CliRunner().invoke(main, ["validate", "--root", str(ROOT)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("OK:")


def test_dictionary_documents_every_column_of_every_sheet():
    dictionary = load_dictionary(ROOT)
    assert (dictionary["description"] != "").all()
    assert set(dictionary["type"]) <= {"string", "integer", "number", "date"}
    for path in sheet_paths(ROOT):
        header = next(csv.reader(path.open(encoding="utf-8")))
        assert set(header) <= set(dictionary.index), (path, set(header) - set(dictionary.index))


def test_required_analyses_exist_with_rationale():
    specs = {s.name: s for s in load_specs(ROOT)}
    for name in ("risk-breast", "risk-colon", "survival-breast-all-cause", "survival-breast-cancer-mortality",
                 "depression"):
        assert name in specs
        assert len(specs[name].rationale) > 40
        assert specs[name].pool_options.method == "REML" and specs[name].pool_options.ci == "knha"


def test_every_study_id_has_doi_pmid_or_source():
    studies = pd.read_csv(ROOT / "extraction/studies.csv", dtype=str, keep_default_na=False)
    assert ((studies.doi != "") | (studies.pmid != "") | (studies.source_url != "")).all()
    used = set()
    for path in sheet_paths(ROOT):
        used |= set(pd.read_csv(path, dtype=str)["study_id"])
    assert used <= set(studies.study_id)


def test_quote_numbers_reads_plain_and_grouped_numbers():
    assert quote_numbers("HR 0.51 [95% CI = 0.41 to 0.63]; n = 1,973") == [0.51, 95.0, 0.41, 0.63, 1.0, 973.0, 1973.0]
    assert 16539.0 in quote_numbers("338,LTPA,5,,No,2,16539,10.8")


def _sheet(name):
    frame, problems = load_sheet(ROOT / "extraction" / name)
    assert problems == []
    return frame


def test_a_number_missing_from_its_quote_is_reported():
    frame = _sheet("survival/survival.csv").copy()
    frame.loc[1, "estimate"] = "0.12"
    frame.loc[1, "ci_lower"] = "0.05"
    studies = set(pd.read_csv(ROOT / "extraction/studies.csv", dtype=str)["study_id"])
    problems, _ = check_evidence_sheet(frame, "survival.csv", load_dictionary(ROOT), studies)
    assert any(p.kind == "not-in-quote" and p.row == 1 and p.column == "estimate" for p in problems)


def test_one_cohort_twice_in_an_analysis_is_reported():
    frame = _sheet("survival/survival.csv")
    twice = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    twice.index = range(1, len(twice) + 1)
    twice.loc[len(twice), "study"] = "Another label"
    studies = set(pd.read_csv(ROOT / "extraction/studies.csv", dtype=str)["study_id"])
    problems, _ = check_evidence_sheet(twice, "survival.csv", load_dictionary(ROOT), studies)
    assert any(p.kind == "cohort-twice" and p.row == len(twice) for p in problems)


def test_change_score_smds_pooled_with_final_values_are_reported(tmp_path):
    for folder in ("extraction", "analyses"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("output", "*.lock"))
    spec = tmp_path / "analyses" / "depression.toml"
    spec.write_text("\n".join(line for line in spec.read_text().splitlines() if not line.startswith("smd_basis")))
    report = validate_project(tmp_path)
    found = [p for p in report.problems if p.kind == "smd-change-with-final"]
    sheet = pd.read_csv(ROOT / "extraction/depression/depression.csv", dtype=str)
    change_rows = [i + 1 for i in sheet.index[sheet["smd_basis"] == "change"]]
    assert change_rows and [p.row for p in found] == change_rows
    assert all(p.column == "smd_basis" and "a spec filter" in p.fix for p in found)
    assert validate_project(ROOT).problems == []

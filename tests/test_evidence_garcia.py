"""The Garcia et al. 2023 evidence in the shipped sheets: every study is identified (DOI or PMID, read and
second-read) or listed in extraction/MISSING.md as not identified, and an unnamed cohort is flagged."""

from __future__ import annotations

import re

import pandas as pd

from meta.sheets.evidence import validate_project

from .conftest import ROOT

EXTRACTION = ROOT / "extraction"


def sheet(name: str) -> pd.DataFrame:
    return pd.read_csv(EXTRACTION / name, dtype=str, keep_default_na=False)


def test_every_study_has_doi_or_pmid_or_is_listed_as_not_identified():
    studies = sheet("studies.csv").set_index("study_id")
    missing = (EXTRACTION / "MISSING.md").read_text(encoding="utf-8")
    section = missing[missing.index("## Garcia 2023 cohorts"):]
    listed = set(re.findall(r"\*\*ref (\d+),", section))
    unidentified = []
    for name in ("risk/dose_levels.csv", "risk/risk_cohorts.csv"):
        rows = sheet(name)
        for study_id, part in rows.groupby("study_id"):
            entry = studies.loc[study_id]
            if entry["doi"] or entry["pmid"]:
                continue
            refs = set(re.findall(r"ref_number (\d+)", " ".join(part["source_location"])))
            unidentified.append(study_id)
            assert refs and refs <= listed | _listed_elsewhere(missing, study_id, refs), (name, study_id, refs)
    assert 0 < len(set(unidentified)) <= 40


def _listed_elsewhere(missing: str, study_id: str, refs: set[str]) -> set[str]:
    """Studies identified earlier without an identifier are listed under their study_id or ref number."""
    return {ref for ref in refs if study_id in missing or f"ref {ref}" in missing or f"ref_number {ref}" in missing}


def test_identified_publications_have_their_quote_and_second_reader():
    studies = sheet("studies.csv")
    checked = studies[studies["checked_by"] != ""]
    assert len(checked) >= 80
    assert (checked["doi"] != "").sum() + (checked["pmid"] != "").sum() >= 80


def test_unnamed_cohorts_are_flagged_by_validate():
    report = validate_project(ROOT)
    assert report.ok
    flagged = [w for w in report.warnings if w.kind == "unnamed-cohort"]
    rows = sheet("risk/risk_cohorts.csv")
    assert len(flagged) == rows["cohort"].str.startswith("not named in repository").sum() > 0


def test_more_events_than_people_is_refused(tmp_path):
    import shutil

    for folder in ("extraction", "analyses"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    path = tmp_path / "extraction" / "risk" / "risk_cohorts.csv"
    rows = sheet("risk/risk_cohorts.csv")
    row = rows.index[(rows["n_total"] != "") & (rows["events_total"] != "")][0]
    rows.loc[row, "events_total"] = str(int(rows.loc[row, "n_total"]) + 1)
    rows.to_csv(path, index=False)
    found = [p for p in validate_project(tmp_path).problems if p.column == "events_total" and p.kind != "not-in-quote"]
    assert [(p.row, p.kind) for p in found] == [(row + 1, "out-of-range")]

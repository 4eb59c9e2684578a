"""`meta run`, `meta add` and `meta diff` on a copy of the shipped evidence.

One copy is run once (module fixture), then a study is added and the run repeated; the tests
check what changed and, as importantly, that nothing else did.
"""

import csv
import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import meta
from meta.cli.main import main

from .conftest import ROOT

NEW_ROW = {
    "study_id": "holick2008", "study": "Example 2025 Cohort", "year": "2025", "cohort": "Example Cohort",
    "design": "cohort", "population": "women with breast cancer", "cancer_site": "breast",
    "outcome": "all_cause_mortality", "sex": "female", "contrast": "highest vs lowest activity",
    "measure": "HR", "estimate": "0.70", "ci_lower": "0.50", "ci_upper": "0.98",
    "source_location": "Table 2", "source_url": "https://example.org/x",
    "quote": "HR 0.70 (95% CI 0.50 to 0.98)", "extracted_by": "test", "extracted_on": "2026-11-22",
}
SURVIVAL = Path("extraction/survival/survival.csv")


def copy_project(target: Path) -> Path:
    for folder in ("extraction", "analyses"):
        shutil.copytree(ROOT / folder, target / folder, ignore=shutil.ignore_patterns("output", "*.lock"))
    for generated in ("analyses/history.csv", "analyses/CHANGES.md"):
        (target / generated).unlink(missing_ok=True)
    return target


def digests(root: Path) -> dict[str, str]:
    files = [p for base in ("analyses", "site", "extraction") for p in (root / base).rglob("*") if p.is_file()]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files
            if not p.name.endswith(".lock")}


def invoke(*args):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("project"))
    first = invoke("run", "--root", str(root), "--date", "2026-01-01")
    assert first.exit_code == 0, first.output
    return root


def test_first_run_writes_every_output(project):
    specs = sorted(p.stem for p in (project / "analyses").glob("*.toml"))
    assert len(specs) >= 6
    for name in specs:
        plots = ((("curve", ("png", "svg")),) if name.startswith("dose-") else
                 (("forest", ("png", "svg")), ("cumulative", ("png",)), ("funnel", ("png",))))
        for plot, formats in plots:
            for fmt in formats:
                assert (project / "analyses/output" / name / f"{plot}.{fmt}").stat().st_size > 1000
                assert (project / "site/plots" / f"{name}-{plot}.{fmt}").exists()
    summary = list(csv.DictReader((project / "analyses/output/summary.csv").open()))
    assert sorted(r["analysis"] for r in summary) == specs
    assert all(r["Last updated"] == "2026-01-01" and r["Change since previous version"] == "first version"
               for r in summary)
    history = list(csv.DictReader((project / "analyses/history.csv").open()))
    assert sorted(r["analysis"] for r in history) == specs
    for table in ("summary.md", "summary.html"):
        assert "Breast cancer incidence" in (project / "analyses/output" / table).read_text()
    for name in (s for s in specs if not s.startswith("dose-")):  # pooled analyses (curves: test_doseresponse_*)
        record = json.loads((project / "analyses/output" / name / "analysis.json").read_text())
        k = record["result"]["k"]
        assert [row["study"] for row in record["influence"]] == ([s["study"] for s in record["studies"]] if k >= 3 else [])
        assert record["certainty"]["level"] in ("high", "moderate", "low", "very low")
        if name == "risk-breast":  # its spec asks for a meta-regression on dose
            assert [c["name"] for c in record["metareg"]["coefficients"]] == ["intrcpt", "dose_met_h_week"]
            # the same model as meta.metareg on the spec's rows (which agrees with metafor: test_metareg.py)
            expected = meta.Review(project).metareg("risk-breast").coefficient("dose_met_h_week").estimate
            assert record["metareg"]["coefficients"][1]["estimate"] == pytest.approx(expected, rel=1e-9)
        assert record["fixed_effect"]["ci_lower"] <= record["fixed_effect"]["estimate"] <= record["fixed_effect"]["ci_upper"]
    # depression pools Chen 2015's cut-off counts as an SMD: people are counted, its cases are no event total
    depression = json.loads((project / "analyses/output/depression/analysis.json").read_text())
    assert depression["participants"] == [791, 6] and depression["events"] == [None, 0]
    survival = json.loads((project / "analyses/output/survival-breast-all-cause/analysis.json").read_text())
    assert survival["events"][0] is not None


def test_second_run_rewrites_nothing(project):
    before = {p: p.stat().st_mtime_ns for p in project.rglob("*") if p.is_file()}
    result = invoke("run", "--root", str(project), "--date", "2026-01-02")
    assert result.exit_code == 0
    assert "0 re-computed; 0 file(s) written; 0 new version(s)" in result.output
    assert {p: p.stat().st_mtime_ns for p in project.rglob("*") if p.is_file()} == before


def test_outputs_are_byte_identical_across_runs(project, tmp_path):
    other = copy_project(tmp_path / "again")
    assert invoke("run", "--root", str(other), "--date", "2026-01-01").exit_code == 0
    mine, theirs = digests(project), digests(other)
    assert mine.keys() == theirs.keys()
    assert sorted(k for k in mine if mine[k] != theirs[k]) == []


def test_add_then_run_changes_only_that_analysis(project):
    before = digests(project)
    sheet = project / SURVIVAL
    original = sheet.read_bytes()
    args = ["add", str(sheet), "--root", str(project), "--run", "--date", "2026-02-01"]
    for column, value in NEW_ROW.items():
        args += ["--set", f"{column}={value}"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "1 re-computed" in result.output
    assert sheet.read_bytes().startswith(original)
    assert sheet.read_bytes().count(b"\n") == original.count(b"\n") + 1

    summary = {r["analysis"]: r for r in csv.DictReader((project / "analyses/output/summary.csv").open())}
    row = summary["survival-breast-all-cause"]
    assert row["Last updated"] == "2026-02-01"
    assert "+1 study (Example 2025 Cohort)" in row["Change since previous version"]
    assert all(r["Last updated"] == "2026-01-01" for name, r in summary.items() if name != "survival-breast-all-cause")

    history = list(csv.DictReader((project / "analyses/history.csv").open()))
    assert [r["analysis"] for r in history if r["version_date"] == "2026-02-01"] == ["survival-breast-all-cause"]
    changes = (project / "analyses/CHANGES.md").read_text()
    assert "## 2026-02-01\n\n- All-cause mortality after breast cancer: +1 study (Example 2025 Cohort); HR " in changes

    after = digests(project)
    changed = {k for k in after if before.get(k) != after[k]}
    allowed_prefixes = ("analyses/output/survival-breast-all-cause/", "site/plots/survival-breast-all-cause-")
    allowed = {"extraction/survival/survival.csv", "analyses/history.csv", "analyses/CHANGES.md",
               "analyses/output/summary.md", "analyses/output/summary.csv", "analyses/output/summary.html",
               "site/index.html", "site/summary.csv", "site/summary.md"}
    assert {k for k in changed if k not in allowed and not k.startswith(allowed_prefixes)} == set()

    diff = invoke("diff", "--root", str(project))
    assert "2026-02-01 survival-breast-all-cause: +1 study (Example 2025 Cohort)" in diff.output


@pytest.mark.parametrize("change, message", [
    ({"estimate": "1.20"}, "does not contain the estimate"),
    ({"quote": "no numbers here"}, "does not appear in the quote"),
    ({"design": "survey"}, "'survey' is not allowed"),
    ({"study_id": "nobody1999"}, "is not in extraction/studies.csv"),
    ({"cohort": "Nurses' Health Study (NHS + NHSII)", "study": "Fortner 2022 duplicate"}, "counted twice"),
])
def test_bad_rows_are_refused_and_the_sheet_is_untouched(project, change, message):
    sheet = project / SURVIVAL
    original = sheet.read_bytes()
    values = {**NEW_ROW, "study": "Refused 2030", "cohort": "Refused Cohort", **change}
    args = ["add", str(sheet), "--root", str(project)]
    for column, value in values.items():
        args += ["--set", f"{column}={value}"]
    result = invoke(*args)
    assert result.exit_code == 1
    assert message in result.stderr, result.stderr
    assert sheet.read_bytes() == original


def test_duplicate_row_is_refused(project):
    sheet = project / SURVIVAL
    rows = list(csv.DictReader(sheet.open()))
    original = sheet.read_bytes()
    args = ["add", str(sheet), "--root", str(project)]
    for column, value in rows[0].items():
        args += ["--set", f"{column}={value}"]
    result = invoke(*args)
    assert result.exit_code == 1
    assert "repeats row 1" in result.stderr or "counted twice" in result.stderr
    assert sheet.read_bytes() == original


def test_site_escapes_text_from_sheets(project):
    sheet = project / SURVIVAL
    args = ["add", str(sheet), "--root", str(project), "--run", "--date", "2026-03-01"]
    values = {**NEW_ROW, "study": "<script>alert(1)</script> 2026", "cohort": "Script Cohort",
              "estimate": "0.72", "quote": "HR 0.72 (95% CI 0.50 to 0.98)"}
    for column, value in values.items():
        args += ["--set", f"{column}={value}"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    page = (project / "site/index.html").read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 2026" in page


def test_spec_outside_project_is_refused(project, tmp_path):
    bad = project / "analyses" / "zz-bad.toml"
    bad.write_text((project / "analyses/depression.toml").read_text().replace(
        'sheet = "extraction/depression/depression.csv"', 'sheet = "../../etc/passwd"'))
    try:
        result = invoke("validate", "--root", str(project))
        assert result.exit_code == 1
        assert "outside the project" in result.stderr
    finally:
        bad.unlink()


def test_published_outputs_are_up_to_date(tmp_path):
    """The committed outputs are what `meta run` makes of the committed sheets and specs."""
    for folder in ("extraction", "analyses", "site"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*.lock"))
    for extra in ("review.toml",):
        if (ROOT / extra).exists():
            shutil.copy(ROOT / extra, tmp_path / extra)
    result = invoke("run", "--root", str(tmp_path), "--date", "2099-01-01")
    assert result.exit_code == 0, result.output
    assert "0 re-computed; 0 file(s) written; 0 new version(s)" in result.output, result.output


def test_low_risk_of_bias_sensitivity_pools_only_those_studies(tmp_path):
    root = copy_project(tmp_path / "rob")
    sheet = root / SURVIVAL
    rows = list(csv.DictReader(sheet.open(encoding="utf-8")))
    chosen = [r for r in rows if r["outcome"] == "all_cause_mortality" and r["cancer_site"] == "breast"][:3]
    for row in rows:
        row["risk_of_bias"] = "low" if row in chosen else "high"
    with sheet.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    spec = root / "analyses/survival-breast-all-cause.toml"
    spec.write_text('baseline_risk = 0.10\nbaseline_risk_source = "test value"\n' + spec.read_text())
    assert invoke("run", "--root", str(root), "--date", "2026-01-01").exit_code == 0
    summary = {r["analysis"]: r for r in csv.DictReader((root / "analyses/output/summary.csv").open())}
    cell = summary["survival-breast-all-cause"]["Absolute effect per 1,000 (95% CI)"]
    assert cell.startswith("100 \u2192 ") and cell.endswith("(baseline: test value)")
    assert summary["risk-breast"]["Absolute effect per 1,000 (95% CI)"] == "no baseline risk in the spec"
    record = json.loads((root / "analyses/output/survival-breast-all-cause/analysis.json").read_text())
    low = record["low_risk_of_bias"]
    assert low["k"] == 3
    from meta.sheets.analyses import pool_frame
    from meta.sheets.load import load_sheet
    from meta.stats.options import EffectOptions, PoolOptions

    frame, _ = load_sheet(sheet)
    subset = frame[frame["study"].isin([r["study"] for r in chosen]) & (frame["outcome"] == "all_cause_mortality")
                   & (frame["cancer_site"] == "breast")]
    expected = pool_frame(subset, "subset", EffectOptions("HR"), PoolOptions(method="REML", ci="knha"))
    assert low["estimate"] == pytest.approx(math.exp(expected.estimate), rel=1e-9)
    assert low["ci_upper"] == pytest.approx(math.exp(expected.ci_upper), rel=1e-9)
    assert "risk of bias: studies at high risk carry" in " ".join(record["certainty"]["reasons"])


def test_a_new_toolkit_version_redraws_everything_but_publishes_no_version(tmp_path, monkeypatch):
    root = copy_project(tmp_path / "upgrade")
    assert invoke("run", "--root", str(root), "--date", "2026-01-01").exit_code == 0
    history = (root / "analyses" / "history.csv").read_bytes()
    monkeypatch.setattr("meta.publish.run.__version__", "99.0.0")
    monkeypatch.setattr("meta.publish.dose_run.__version__", "99.0.0")
    result = invoke("run", "--root", str(root), "--date", "2026-02-01")
    assert result.exit_code == 0, result.output
    specs = len(list((root / "analyses").glob("*.toml")))
    assert f"{specs} re-computed" in result.output and "0 new version(s)" in result.output, result.output
    assert (root / "analyses" / "history.csv").read_bytes() == history


def test_changes_say_whether_the_spec_or_the_data_changed(tmp_path):
    root = copy_project(tmp_path / "why")
    assert invoke("run", "--root", str(root), "--date", "2026-01-01").exit_code == 0
    spec = root / "analyses" / "depression.toml"
    text = spec.read_text()
    assert 'smd_basis = ["final", "adjusted", "not_stated", "odds_ratio"]' in text
    spec.write_text(text.replace('smd_basis = ["final", "adjusted", "not_stated", "odds_ratio"]',
                                 'smd_basis = ["final", "adjusted", "odds_ratio"]'))
    assert invoke("run", "--root", str(root), "--date", "2026-02-01").exit_code == 0
    sheet = root / "extraction" / "depression" / "depression.csv"
    rows = list(csv.DictReader(sheet.open(encoding="utf-8")))
    assert rows[0]["study_id"] == "courneya2003b" and rows[0]["risk_of_bias"] == "some_concerns"
    rows[0]["risk_of_bias"] = "high"  # a corrected judgement: the data change, the spec does not
    with sheet.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    result = invoke("run", "--root", str(root), "--date", "2026-03-01")
    assert result.exit_code == 0, result.output
    changes = (root / "analyses" / "CHANGES.md").read_text()
    section = dict(part.split("\n", 1) for part in changes.split("\n## ")[1:])
    assert "-1 study (Livingston 2015); analysis spec changed; SMD" in section["2026-02-01"]
    assert "Depressive symptoms in exercise trials: study data corrected; SMD" in section["2026-03-01"]
    history = (root / "analyses" / "history.csv").read_text().splitlines()
    assert history[0].endswith(",spec_hash") and len(history[-1].rsplit(",", 1)[1]) == 64


def test_participants_count_arms_given_as_events_and_non_events():
    import pandas as pd

    from meta.publish.run import _totals

    rows = pd.DataFrame({"events_treat": ["10", "3"], "nonevents_treat": ["39", None], "n_treat": [None, "20"],
                         "events_ctrl": ["23", "6"], "nonevents_ctrl": ["26", None], "n_ctrl": [None, "20"]})
    assert _totals(rows, "OR") == ((98 + 40, 2), (33 + 9, 2))

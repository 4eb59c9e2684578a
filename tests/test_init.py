"""`meta init`: a new review that validates and runs at once, grows with `meta add`, and carries
nothing of the exercise-and-cancer review."""

import csv

import pytest
from click.testing import CliRunner

from meta.cli.main import main
from meta.cli.review import init

from .conftest import ROOT

TRIALS = [  # three fictional trials added to the example sheet with `meta add`
    ("example2023", "EXAMPLE Trial C 2023 (fictional)", "2023", "EXAMPLE Trial C", "8", "60", "15", "61"),
    ("example2024", "EXAMPLE Trial D 2024 (fictional)", "2024", "EXAMPLE Trial D", "22", "210", "30", "205"),
    ("example2025", "EXAMPLE Trial E 2025 (fictional)", "2025", "EXAMPLE Trial E", "5", "40", "4", "41"),
]


def invoke(command, *args):
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def review(tmp_path):
    root = tmp_path / "new-review"
    result = invoke(init, root, "--title", "Drug X for migraine: a living review", "--date", "2026-05-01")
    assert result.exit_code == 0, result.output
    return root


def test_the_scaffold_validates_and_runs_at_once(review):
    for path in ("README.md", "review.toml", "extraction/dictionary.csv", "extraction/studies.csv",
                 "extraction/example/example.csv", "analyses/example.toml"):
        assert (review / path).is_file(), path
    readme = (review / "README.md").read_text()
    assert "meta validate" in readme and "meta run" in readme and "Drug X for migraine" in readme
    validated = invoke(main, "validate", "--root", review)
    assert validated.exit_code == 0, validated.output
    assert "OK: 1 sheets, 2 rows, 1 analysis specs" in validated.output
    ran = invoke(main, "run", "--root", review, "--date", "2026-05-01")
    assert ran.exit_code == 0, ran.output
    assert (review / "analyses/output/example/forest.png").stat().st_size > 1000
    assert "Drug X for migraine: a living review" in (review / "site/index.html").read_text()


def test_example_rows_say_they_are_fictional(review):
    rows = list(csv.DictReader((review / "extraction/example/example.csv").open()))
    assert len(rows) == 2
    for row in rows:
        assert row["study"].startswith("EXAMPLE") and "(fictional)" in row["study"]
        assert row["notes"].startswith("EXAMPLE ROW: fictional") and row["extracted_on"] == "2026-05-01"
    studies = list(csv.DictReader((review / "extraction/studies.csv").open()))
    assert all(s["title"].startswith("EXAMPLE") for s in studies)


def test_dictionary_is_the_projects_with_cancer_site_optional(review):
    ours = (ROOT / "extraction/dictionary.csv").read_text().splitlines()
    theirs = (review / "extraction/dictionary.csv").read_text().splitlines()
    assert len(ours) == len(theirs)
    differ = [(a, b) for a, b in zip(ours, theirs) if a != b]
    assert differ == [(a, a.replace(",yes,", ",no,", 1)) for a in ours if a.startswith("cancer_site,")]


def test_three_studies_added_then_run_publishes_plots_table_and_site(review):
    sheet = review / "extraction/example/example.csv"
    for study_id, study, year, cohort, a, n1, c, n2 in TRIALS:
        with open(review / "extraction/studies.csv", "a", newline="") as handle:
            csv.writer(handle).writerow([study_id, "EXAMPLE (fictional)", year, "EXAMPLE: fictional trial", "", "",
                                         "", "rct", "EXAMPLE: fictional adults", cohort,
                                         f"https://example.org/{study_id}"])
        values = {"study_id": study_id, "study": study, "year": year, "cohort": cohort, "design": "rct",
                  "population": "EXAMPLE: fictional adults", "outcome": "example_outcome", "sex": "both",
                  "contrast": "EXAMPLE intervention vs control", "measure": "RR", "events_treat": a,
                  "n_treat": n1, "events_ctrl": c, "n_ctrl": n2, "source_location": "EXAMPLE: Table 1",
                  "source_url": f"https://example.org/{study_id}",
                  "quote": f"EXAMPLE (fictional): {a}/{n1} vs {c}/{n2}", "extracted_by": "test",
                  "extracted_on": "2026-05-02", "notes": "EXAMPLE ROW: fictional"}
        args = ["add", sheet, "--root", review]
        for column, value in values.items():
            args += ["--set", f"{column}={value}"]
        added = invoke(main, *args)
        assert added.exit_code == 0, added.output
    ran = invoke(main, "run", "--root", review, "--date", "2026-05-02")
    assert ran.exit_code == 0, ran.output
    for plot, formats in (("forest", ("png", "svg")), ("cumulative", ("png",)), ("funnel", ("png",))):
        for fmt in formats:
            assert (review / "analyses/output/example" / f"{plot}.{fmt}").stat().st_size > 1000
            assert (review / "site/plots" / f"example-{plot}.{fmt}").is_file()
    summary = list(csv.DictReader((review / "analyses/output/summary.csv").open()))
    assert [(r["analysis"], r["Studies (k)"]) for r in summary] == [("example", "5")]
    page = (review / "site/index.html").read_text()
    assert "EXAMPLE Trial E 2025 (fictional)" in page
    markdown = (review / "analyses/output/summary.md").read_text()
    assert markdown.startswith("# Living summary: Drug X for migraine: a living review")
    for published in (page, markdown):  # nothing of the review this toolkit was first made for
        assert "cancer" not in published.lower() and "exercise" not in published.lower()


def test_init_never_overwrites(review, tmp_path):
    again = invoke(init, review)
    assert again.exit_code == 1 and "already holds a review" in again.output
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert invoke(init, a_file).exit_code in (1, 2)
    repository = tmp_path / "repository"  # a fresh repository's README is kept
    repository.mkdir()
    (repository / "README.md").write_text("# Mine\n")
    assert invoke(init, repository).exit_code == 0
    assert (repository / "README.md").read_text() == "# Mine\n" and (repository / "analyses/example.toml").exists()


def test_review_toml_is_checked(review):
    (review / "review.toml").write_text('title = "T"\nsubtitle = "no such key"\n')
    result = invoke(main, "validate", "--root", review)
    assert result.exit_code == 1 and "review.toml: unknown key(s) subtitle" in result.output
    (review / "review.toml").unlink()
    assert invoke(main, "validate", "--root", review).exit_code == 0

"""Outputs are safe whatever the sheets and specs say: text is escaped in HTML and SVG, CSV cells
cannot run as spreadsheet formulas, and no path is followed outside the project.

One copy of the project is made hostile (spec texts and a DOI that are HTML, script or formulas),
run, given a hostile row (label, cohort, source) and run again; the tests read what it published.
"""

import csv
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from meta.cli.main import main
from meta.errors import SpecError
from meta.sheets.evidence import sheet_paths, validate_project
from meta.sheets.specs import inside_project

from .test_run import NEW_ROW, SURVIVAL, copy_project

LABEL = "<img src=x onerror=alert(1)> 2025"
HOSTILE_ROW = {**NEW_ROW, "study": LABEL, "cohort": "<script>alert(2)</script>",
               "source_location": '"><svg onload=alert(3)>', "source_url": "javascript:alert(4)"}
SPEC_TEXTS = {"title": "+1+1 <b onmouseover=alert(5)>Depression</b>", "population": "=cmd|' /C calc'!A0",
              "comparison": "@SUM(A1)"}
DOI = '10.1000/x" onmouseover="alert(6)'
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("hostile"))
    spec = root / "analyses" / "depression.toml"
    lines = [line for line in spec.read_text().splitlines() if line.split(" = ")[0] not in SPEC_TEXTS]
    spec.write_text("\n".join([f"{key} = {json.dumps(value)}" for key, value in SPEC_TEXTS.items()] + lines) + "\n")
    studies = root / "extraction" / "studies.csv"
    rows = list(csv.DictReader(studies.open(newline="")))
    for row in rows:
        if row["study_id"] == NEW_ROW["study_id"]:
            row["doi"] = DOI
    with studies.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    assert invoke("run", "--root", root, "--date", "2026-01-01").exit_code == 0
    args = ["add", root / SURVIVAL, "--root", root, "--run", "--date", "2026-02-01"]
    for column, value in HOSTILE_ROW.items():
        args += ["--set", f"{column}={value}"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output + result.stderr
    return root


class Elements(HTMLParser):
    """The tags, attributes and text of an HTML page."""

    def __init__(self):
        super().__init__()
        self.tags, self.attributes, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.parametrize("page", ["site/index.html", "analyses/output/summary.html"])
def test_text_from_sheets_and_specs_is_escaped_in_html(hostile, page):
    parsed = Elements()
    parsed.feed((hostile / page).read_text())
    assert "script" not in parsed.tags and "svg" not in parsed.tags
    assert [a for a in parsed.attributes if a[1].startswith("on")] == []
    assert [a for a in parsed.attributes if a[2].strip().lower().startswith("javascript:")] == []
    text = "".join(parsed.text)
    assert "+1+1 <b onmouseover=alert(5)>Depression</b>" in text  # shown as text, as written
    if page == "site/index.html":
        assert LABEL in text and "<script>alert(2)</script>" in text and '"><svg onload=alert(3)>' in text
        assert ("a", "href", f"https://doi.org/{DOI}") in parsed.attributes  # the quote stays inside href
    else:
        assert "<img src=x onerror=alert(1)>" in text  # in "Change since previous version"


def test_plots_are_well_formed_svg_without_scripts(hostile):
    plots = sorted((hostile / "site" / "plots").glob("*.svg"))
    assert plots
    for plot in plots:
        tree = ElementTree.parse(plot)
        for element in tree.iter():
            assert not element.tag.endswith(("script", "foreignObject")), plot
            assert not [name for name in element.attrib if name.lower().startswith("on")], plot


@pytest.mark.parametrize("table", ["analyses/output/summary.csv", "site/summary.csv"])
def test_csv_exports_neutralise_formulas(hostile, table):
    rows = list(csv.reader((hostile / table).open(newline="")))
    cells = [cell for row in rows for cell in row]
    assert "'=cmd|' /C calc'!A0" in cells and "'@SUM(A1)" in cells
    assert any(cell.startswith("'+1 study (<img") for cell in cells)
    for cell in cells:
        if cell.startswith(FORMULA_START):
            float(cell)  # only numbers may start with = + - @


def spec_with_sheet(root: Path, sheet: str) -> Path:
    spec = root / "analyses" / "zz-escape.toml"
    spec.write_text((root / "analyses" / "depression.toml").read_text().replace(
        'sheet = "extraction/depression/depression.csv"', f'sheet = "{sheet}"'))
    return spec


@pytest.mark.parametrize("sheet", ["../../etc/passwd", "/etc/passwd", "extraction/../../outside.csv",
                                   "extraction/depression/../../../outside.csv", "extraction/link/outside.csv"])
def test_no_spec_path_leads_outside_the_project(tmp_path, sheet):
    root = copy_project(tmp_path / "project")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "outside.csv").write_text("secret-token-123,x\n1,2\n")
    (root / "extraction" / "link").symlink_to(outside, target_is_directory=True)
    spec = spec_with_sheet(root, sheet)
    with pytest.raises(SpecError, match="outside the project"):
        inside_project(sheet, root, "zz-escape.toml")
    result = invoke("validate", "--root", root)
    assert result.exit_code == 1
    assert "zz-escape.toml: sheet" in result.stderr and "outside the project" in result.stderr
    assert "secret-token-123" not in result.stderr + result.output
    spec.unlink()


def test_a_sheet_linked_from_outside_is_reported_and_never_read_or_written(tmp_path):
    root = copy_project(tmp_path / "project")
    outside = tmp_path / "outside.csv"
    outside.write_text("secret-token-123,x\n1,2\n")
    link = root / "extraction" / "survival" / "linked.csv"
    link.symlink_to(outside)
    assert link not in sheet_paths(root)
    report = validate_project(root)
    assert [p.kind for p in report.problems] == ["outside-project"]
    assert "secret-token-123" not in " ".join(str(p) for p in report.problems)
    result = invoke("add", link, "--root", root, "--set", "study=x")
    assert result.exit_code == 1 and "not a result sheet of this project" in result.stderr
    assert outside.read_text() == "secret-token-123,x\n1,2\n" and link.is_symlink()


@pytest.mark.parametrize("line", ["sheet = 5", "level = \"high\""])
def test_a_spec_with_a_value_of_the_wrong_type_is_a_clear_error(tmp_path, line):
    root = copy_project(tmp_path / "project")
    spec = root / "analyses" / "depression.toml"
    key = line.split(" = ")[0]
    lines = [x for x in spec.read_text().splitlines() if not x.startswith(f"{key} = ")]
    spec.write_text("\n".join([line, *lines]) + "\n")
    result = invoke("validate", "--root", root)
    assert result.exit_code == 1 and "depression.toml" in result.stderr


def test_a_label_with_dollar_signs_is_drawn_as_text(hostile, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(hostile, root)
    args = ["add", root / SURVIVAL, "--root", root, "--run", "--date", "2026-03-01"]
    values = {**NEW_ROW, "study": r"Cost $\frac$ 2020", "cohort": "Dollar Cohort", "estimate": "0.75",
              "quote": "HR 0.75 (95% CI 0.50 to 0.98)"}
    for column, value in values.items():
        args += ["--set", f"{column}={value}"]
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr

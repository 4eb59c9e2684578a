"""`meta import FILE.csv|FILE.xlsx --outcome NAME`: columns found by their common names, the
mapping reported, and the pooled result that of the same data in the reference datasets."""

import csv
import json
import math

import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from meta.cli.main import main
from meta.cli.review import import_command
from meta.interop.scaffold import init_review
from meta.interop.spreadsheet import match_columns

from .revman_fixture import dataset, reference

DICTIONARY = ("study", "year", "events_treat", "n_treat", "events_ctrl", "n_ctrl", "mean_treat", "sd_treat",
              "mean_ctrl", "sd_ctrl", "estimate", "ci_lower", "ci_upper", "yi", "vi", "sei", "n_total", "subgroup")


def invoke(command, *args):
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def root(tmp_path):
    init_review(tmp_path / "review", "Spreadsheets", "2026-01-01")
    return tmp_path / "review"


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def pooled(root, name):
    assert invoke(main, "run", "--root", root, "--date", "2026-01-02").exit_code == 0
    return json.loads((root / "analyses/output" / name / "analysis.json").read_text())["result"]


def same(result, expected):
    for field in ("estimate", "ci_lower", "ci_upper", "tau2", "i2"):
        assert math.isclose(result[field], expected[field], rel_tol=1e-6, abs_tol=1e-12), field


@pytest.mark.parametrize("header, expected", [
    (["Author", "Yr", "Events (T)", "N1", "events_c", "n2"],
     ["study", "year", "events_treat", "n_treat", "events_ctrl", "n_ctrl"]),
    (["Trial", "events_1", "total_1", "events_2", "total_2"], ["study", "events_treat", "n_treat", "events_ctrl", "n_ctrl"]),
    (["study", "ai", "n1i", "cpos", "n2i"], ["study", "events_treat", "n_treat", "events_ctrl", "n_ctrl"]),
    (["Study", "Mean_T", "SD_T", "N_T", "mean control", "sd control", "n control"],
     ["study", "mean_treat", "sd_treat", "n_treat", "mean_ctrl", "sd_ctrl", "n_ctrl"]),
    (["label", "m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"],
     ["study", "mean_treat", "sd_treat", "n_treat", "mean_ctrl", "sd_ctrl", "n_ctrl"]),
    (["Study", "HR", "Lower 95%", "Upper 95%", "N"], ["study", "estimate", "ci_lower", "ci_upper", "n_total"]),
    (["trial", "tpos", "tneg", "cpos", "cneg"],
     ["study", "events_treat", "nonevents_treat", "events_ctrl", "nonevents_ctrl"]),
    (["study", "yi", "vi"], ["study", "yi", "vi"]),
    (["Study", "logOR", "SE", "Subgroup"], ["study", "yi", "sei", "subgroup"]),
])
def test_common_column_names_are_recognised(header, expected):
    mapping, unmapped = match_columns(header, DICTIONARY)
    assert [mapping[i] for i in sorted(mapping)] == expected
    assert unmapped == []


def test_unknown_and_repeated_columns_are_left_out():
    mapping, unmapped = match_columns(["study", "country", "n1", "n_t"], DICTIONARY)
    assert mapping == {0: "study", 2: "n_treat"}
    assert unmapped == ["country", "n_t"]


def test_csv_with_synonyms_pools_as_the_reference(root, tmp_path):
    rows = [[r["study"], r["year"], r["events_treat"], r["n_treat"], r["events_ctrl"], r["n_ctrl"], "x"]
            for r in dataset("bcg_rr")]
    path = write_csv(tmp_path / "bcg.csv", ["Trial", "Year", "Events (T)", "N1", "events_c", "n2", "Country"], rows)
    result = invoke(import_command, path, "--root", root, "--outcome", "Tuberculosis", "--date", "2026-01-02")
    assert result.exit_code == 0, result.output
    for line in ("| Trial | study |", "| Events (T) | events_treat |", "| n2 | n_ctrl |",
                 "Not mapped (kept only in each row's quote): Country.", "Measure: RR (from the effect columns"):
        assert line in result.output
    assert (root / "extraction/tuberculosis/IMPORT_REPORT.md").is_file()
    spec = (root / "analyses/tuberculosis.toml").read_text()
    assert 'method = "REML"' in spec and 'ci = "knha"' in spec
    sheet = list(csv.DictReader((root / "extraction/tuberculosis/tuberculosis.csv").open()))
    assert sheet[0]["quote"] == "Trial: Aronson 1948; Year: 1948; Events (T): 4; N1: 123; events_c: 11; n2: 139; Country: x"
    assert sheet[0]["source_location"] == "bcg.csv, row 2" and sheet[0]["study_id"] == "aronson1948"
    same(pooled(root, "tuberculosis"), reference("bcg_rr", "REML", "knha"))


def test_cases_and_non_cases_as_dat_bcg_prints_them_pool_as_the_reference(root, tmp_path):
    rows = [[r["study"], r["events_treat"], r["nonevents_treat"], r["events_ctrl"], r["nonevents_ctrl"]]
            for r in dataset("bcg_rr_cells")]
    path = write_csv(tmp_path / "bcg.csv", ["trial", "tpos", "tneg", "cpos", "cneg"], rows)
    result = invoke(import_command, path, "--root", root, "--outcome", "TB cells", "--date", "2026-01-02")
    assert result.exit_code == 0, result.output
    assert "| tneg | nonevents_treat |" in result.output and "Measure: RR" in result.output
    same(pooled(root, "tb-cells"), reference("bcg_rr", "REML", "knha"))


def test_xlsx_ratios_pool_as_the_reference(root, tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.title = "Data"
    sheet.append(["Study", "OR", "lower", "upper"])
    for r in dataset("hackshaw_or_ci"):
        sheet.append([r["study"], float(r["estimate"]), float(r["ci_lower"]), float(r["ci_upper"])])
    book.create_sheet("Other")
    path = tmp_path / "smoking.xlsx"
    book.save(path)
    result = invoke(import_command, path, "--root", root, "--outcome", "Lung cancer", "--set", "design=cohort")
    assert result.exit_code == 0, result.output
    assert "Measure: OR." in result.output and "design = cohort" in result.output
    rows = list(csv.DictReader((root / "extraction/lung-cancer/lung-cancer.csv").open()))
    assert rows[0]["source_location"] == "smoking.xlsx, sheet 'Data', row 2"
    assert {r["design"] for r in rows} == {"cohort"}
    same(pooled(root, "lung-cancer"), reference("hackshaw_or_ci", "REML", "knha"))
    missing = invoke(import_command, path, "--root", root, "--outcome", "Again", "--sheet", "Nope")
    assert missing.exit_code == 1 and "no sheet 'Nope'; its sheets: Data, Other" in missing.output


def test_means_with_measure_md_and_precomputed_effects(root, tmp_path):
    normand = write_csv(tmp_path / "stay.csv", ["Study", "mean_1", "sd_1", "n_1", "mean_2", "sd_2", "n_2"],
                        [[r["study"], r["mean_treat"], r["sd_treat"], r["n_treat"], r["mean_ctrl"], r["sd_ctrl"],
                          r["n_ctrl"]] for r in dataset("normand_md")])
    assert invoke(import_command, normand, "--root", root, "--outcome", "Stay", "--measure", "MD").exit_code == 0
    gen = write_csv(tmp_path / "gen.csv", ["label", "year", "es", "variance"],
                    [[r["study"], r["year"], r["yi"], r["vi"]] for r in dataset("bangertdrowns_gen")])
    result = invoke(import_command, gen, "--root", root, "--outcome", "Writing")
    assert result.exit_code == 0, result.output
    assert "Measure: GEN (from the effect columns" in result.output
    same(pooled(root, "stay"), reference("normand_md", "REML", "knha"))
    same(pooled(root, "writing"), reference("bangertdrowns_gen", "REML", "knha"))


@pytest.mark.parametrize("args, content, message", [
    ([], "study,yi,vi\nA,0.1,0.01\n", "needs --outcome NAME"),
    (["--outcome", "x"], "country,yi,vi\nA,0.1,0.01\n", "no column of study labels"),
    (["--outcome", "x"], "study,country\nA,B\n", "no effect columns found"),
    (["--outcome", "x"], "study,yi,vi\n", "a header but no rows"),
    (["--outcome", "x", "--set", "colour=red"], "study,yi,vi\nA,0.1,0.01\n", "colour are not in"),
    (["--outcome", "x"], "study,events_1,n_1,events_2,n_2\nA,50,20,3,20\n", "is larger than n_treat"),
])
def test_bad_spreadsheets_are_refused_and_nothing_is_written(root, tmp_path, args, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    before = (root / "extraction/studies.csv").read_bytes()
    result = invoke(import_command, path, "--root", root, *args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert (root / "extraction/studies.csv").read_bytes() == before
    assert not (root / "extraction/x").exists() and not (root / "analyses/x.toml").exists()


def test_other_formats_are_refused(root, tmp_path):
    path = tmp_path / "data.sav"
    path.write_text("x")
    result = invoke(import_command, path, "--root", root, "--outcome", "x")
    assert result.exit_code == 1 and "reads .rm5 (RevMan 5), .csv and .xlsx" in result.output

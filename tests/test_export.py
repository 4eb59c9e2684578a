"""`meta export`: the R script re-does each analysis with metafor and gets the toolkit's numbers.

The analyses are this project's own specs, the specs of a RevMan import (DL, FE, MD, zero cells,
generic inverse variance, subgroups) and variants of them that cover every estimator, both tests,
another level, the pooled-SD MD, SMD (from means, from printed d and from odds ratios), OR, RD (from events with n or with
non-events), GEN and k = 1. The R comparison runs where
`Rscript` with metafor is installed (skipped otherwise); all scripts run in one R process.
"""

import csv
import io
import math
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from meta.cli.review import export
from meta.sheets.specs import load_specs
from meta.interop.export import export_analysis, load_analysis
from meta.interop.revman import import_revman
from meta.interop.scaffold import init_review
from meta.sheets.analyses import pool_frame

from .conftest import ROOT
from .revman_fixture import build_rm5, dataset

VARIANTS = {  # name: (spec of the imported review it starts from, changes)
    "v-md-pooled-pm-knha-90": ("test-c3-o1", {"md_variance": "pooled", "method": "PM", "ci": "knha", "level": 90}),
    "v-smd-sj": ("test-c3-o1", {"measure": "SMD", "method": "SJ"}),
    "v-rr-keep-reml-knha": ("test-c2-o1", {"zero_cells": "keep", "method": "REML", "ci": "knha"}),
    "v-or-drop-he": ("test-c2-o1", {"measure": "OR", "method": "HE"}),
    "v-rd-hs": ("test-c2-o1", {"measure": "RD", "zero_cells": "keep", "method": "HS"}),
    "v-bcg-ml-knha": ("test-c1-o1", {"method": "ML", "ci": "knha"}),
    "v-bcg-eb": ("test-c1-o2", {"method": "EB"}),
    "v-iv-reml-knha": ("test-c4-o1", {"method": "REML", "ci": "knha"}),
}
COMPARED = ("estimate", "se", "ci_lower", "ci_upper", "tau2", "i2", "q", "pi_lower", "pi_upper")


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    init_review(root, "Export test", "2026-01-01")
    rm5 = root / "test.rm5"
    rm5.write_text(build_rm5())
    import_revman(rm5, root, "2026-01-01")
    for name, (base, changes) in VARIANTS.items():
        text = (root / "analyses" / f"{base}.toml").read_text()
        lines = [line for line in text.splitlines() if line.split(" = ")[0] not in changes]
        lines[:0] = [f'{key} = {value!r}'.replace("'", '"') for key, value in changes.items()]
        (root / "analyses" / f"{name}.toml").write_text("\n".join(lines) + "\n")
    add_reference_analysis(root, "bangertdrowns_gen", ["study", "year", "yi", "vi"], "GEN", "DL", "v-gen-dl-knha")
    add_reference_analysis(root, "normand_smd_from_d", ["study", "d", "n_treat", "n_ctrl"], "SMD", "REML",
                           "v-smd-from-d-reml-knha")
    add_reference_analysis(root, "nielweise_or2dl", ["study", "events_treat", "n_treat", "events_ctrl", "n_ctrl",
                                                     "smd_basis"], "SMD", "DL", "v-smd-from-or-dl-knha")
    add_reference_analysis(root, "bcg_rr_cells", ["study", "events_treat", "nonevents_treat", "events_ctrl",
                                                  "nonevents_ctrl"], "RR", "DL", "v-rr-from-cells-dl-knha")
    add_reference_analysis(root, "normand_md_ci", ["study", "estimate", "ci_lower", "ci_upper"], "MD", "REML",
                           "v-md-from-ci-reml-knha")
    (root / "analyses" / "v-single-knha.toml").write_text(
        (root / "analyses" / "test-c4-o1.toml").read_text().replace('ci = "z"', 'ci = "knha"')
        + 'study = "Akiba 1986 13"\n')
    return root


def add_reference_analysis(root, dataset_name, columns, measure, method, name):
    """A sheet of ``columns`` of a reference dataset and a Knapp-Hartung spec ``name`` pooling it."""
    folder = root / "extraction" / dataset_name
    folder.mkdir()
    with open(folder / "sheet.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows([r[c] for c in columns] for r in dataset(dataset_name))
    (root / "analyses" / f"{name}.toml").write_text(
        f'title = "{dataset_name}"\noutcome = "x"\npopulation = "x"\ncomparison = "x"\n'
        f'sheet = "extraction/{dataset_name}/sheet.csv"\nmeasure = "{measure}"\nmethod = "{method}"\nci = "knha"\n'
        'rationale = "x"\n')


def analyses(review):
    """Every pooled analysis (dose-response specs are not exported: test_dose_response_specs_are_refused)."""
    return [(root, spec.name) for root in (ROOT, review) for spec in load_specs(root)]


def toolkit(root, name):
    spec, chosen, _, _ = load_analysis(root, name)
    results = {"": pool_frame(chosen, name, spec.effect_options, spec.pool_options)}
    if spec.subgroup:
        levels = chosen[spec.subgroup].fillna("not reported")
        for level in sorted(set(levels)):
            results[f"subgroup[{level}] "] = pool_frame(chosen[levels == level], name, spec.effect_options,
                                                         spec.pool_options)
    return results


def metafor_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    done = subprocess.run(["Rscript", "-e", "library(metafor)"], capture_output=True, check=False)
    return done.returncode == 0


@pytest.mark.skipif(not metafor_available(), reason="needs Rscript with metafor")
def test_r_scripts_reproduce_every_analysis(review, tmp_path):
    cases = analyses(review)
    scripts = []
    for n, (root, name) in enumerate(cases):
        path = tmp_path / f"{n}.R"
        path.write_text(export_analysis(root, name, "r"))
        scripts.append(path)
    runner = "for (f in commandArgs(TRUE)) { cat('=== ', f, '\\n', sep = ''); sys.source(f, envir = new.env()) }"
    done = subprocess.run(["Rscript", "-e", runner, *map(str, scripts)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = {}
    for block in done.stdout.split("=== ")[1:]:
        path, _, text = block.partition("\n")
        outputs[path] = {k: float(v) for k, _, v in (line.partition(" = ") for line in text.splitlines())
                         if _ and _number(v) and not k.startswith(("RR", "OR", "HR"))}
    assert len(outputs) == len(cases)
    checked = 0
    for (root, name), path in zip(cases, scripts):
        numbers = outputs[str(path)]
        for prefix, result in toolkit(root, name).items():
            assert numbers[f"{prefix}k"] == result.k, (name, prefix)
            for field in COMPARED:
                ours, theirs = getattr(result, field), numbers[f"{prefix}{field}"]
                assert math.isclose(ours, theirs, rel_tol=1e-6, abs_tol=1e-10), (name, prefix, field, ours, theirs)
                checked += 1
    assert checked > 300  # 9 numbers of every analysis and subgroup


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def test_r_script_follows_the_spec(review):
    script = export_analysis(review, "v-md-pooled-pm-knha-90", "r")
    assert 'vtype = "HO"' in script and 'method = "PM"' in script and 'test = "knha"' in script
    assert "level = 90.0" in script
    script = export_analysis(review, "test-c2-o1", "r")
    assert 'add = 1/2, to = "only0", drop00 = TRUE' in script and 'method = "FE"' in script
    assert 'drop00 = FALSE' in export_analysis(review, "v-rr-keep-reml-knha", "r")
    assert "(2 * qnorm(0.5 + interval$ci_level / 200))" in export_analysis(ROOT, "survival-breast-all-cause", "r")
    single = export_analysis(review, "v-single-knha", "r")
    assert 'test = "z"' in single and "k = 1" in single
    assert "for (level in sort(unique(dat$subgroup)))" in export_analysis(review, "test-c1-o1", "r")
    cells = export_analysis(review, "v-rr-from-cells-dl-knha", "r")  # Aronson 1948: 4 + 119 vaccinated
    assert "n_treat = c(4 + 119, " in cells and "n_ctrl = c(11 + 128, " in cells


def test_r_strings_are_escaped(review):
    sheet = review / "extraction" / "bangertdrowns_gen" / "sheet.csv"
    original = sheet.read_text()
    sheet.write_text(original.replace("Ashworth 1992 1", 'Ashworth "quoted" \\ Nørby 1992'))
    try:
        script = export_analysis(review, "v-gen-dl-knha", "r")
    finally:
        sheet.write_text(original)
    assert '"Ashworth \\"quoted\\" \\\\ N\\U{000000f8}rby 1992"' in script


def test_csv_has_the_yi_vi_of_each_study_pooled(review):
    spec, _, _, effects = load_analysis(review, "test-c2-o1")
    rows = list(csv.DictReader(io.StringIO(export_analysis(review, "test-c2-o1", "csv"))))
    assert [r["study"] for r in rows] == list(effects.labels)
    assert len(rows) == len(dataset("nielweise_rr_drop00")) - len(effects.dropped) == effects.k
    assert [float(r["yi"]) for r in rows] == list(effects.yi)
    assert [float(r["vi"]) for r in rows] == list(effects.vi)
    header = export_analysis(review, "test-c1-o1", "csv").splitlines()[0]
    assert header == "study,year,subgroup,yi,vi"


def test_cli_writes_the_file_and_reports_errors(review, tmp_path):
    out = tmp_path / "a.R"
    result = CliRunner().invoke(export, ["test-c3-o1", "--to", "r", "--root", str(review), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == export_analysis(review, "test-c3-o1", "r")
    shown = CliRunner().invoke(export, ["test-c3-o1", "--to", "csv", "--root", str(review)])
    assert shown.output == export_analysis(review, "test-c3-o1", "csv")
    missing = CliRunner().invoke(export, ["nothing", "--to", "r", "--root", str(review)])
    assert missing.exit_code == 1 and "no analysis 'nothing'" in missing.output and "test-c3-o1" in missing.output
    assert not isinstance(missing.exception, Exception) or isinstance(missing.exception, SystemExit)
    bad = CliRunner().invoke(export, ["test-c3-o1", "--to", "stata", "--root", str(review)])
    assert bad.exit_code == 2


def test_dose_response_specs_are_refused_with_the_reason():
    done = CliRunner().invoke(export, ["dose-colon", "--to", "r", "--root", str(ROOT)])
    assert done.exit_code == 1 and "dose-response analysis" in done.stderr

"""The command line chooses one analysis (``--spec``, ``--where``), refuses mixed SMD bases, speaks one
vocabulary (``--ci`` and ``--level`` everywhere, knha by default, ``--json`` on validate/run/diff) and
says each warning once; and ``meta run --force`` on the shipped review rewrites no published file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from meta.cli.main import main

from .conftest import REFERENCE, ROOT

DEPRESSION = str(ROOT / "extraction" / "depression" / "depression.csv")
RISK = str(ROOT / "extraction" / "risk" / "risk_cohorts.csv")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def published(name: str) -> dict:
    return json.loads((ROOT / "analyses" / "output" / name / "analysis.json").read_text())["result"]


@pytest.mark.parametrize("name", ["depression", "risk-colon", "survival-breast-all-cause"])
def test_pool_spec_runs_exactly_the_published_analysis(name):
    done = invoke("pool", "--spec", name, "--root", ROOT, "--json")
    assert done.exit_code == 0, done.output
    result, expected = json.loads(done.stdout), published(name)
    for field in ("k", "method", "ci_method"):
        assert result[field] == expected[field], field
    for field in ("estimate", "ci_lower", "ci_upper", "tau2", "i2"):  # analysis.json keeps 12 digits
        assert result[field] == pytest.approx(expected[field], rel=1e-11), field


def test_options_on_the_command_line_override_the_spec():
    done = invoke("pool", "--spec", "depression", "--root", ROOT, "--ci", "z", "--method", "DL", "--json")
    result = json.loads(done.stdout)
    assert (result["ci_method"], result["method"]) == ("z", "DL")


def test_pool_refuses_change_score_with_follow_up_smds_and_says_how():
    done = invoke("pool", DEPRESSION, "--measure", "SMD")
    assert done.exit_code == 1
    assert "change-score SMD with SMDs of follow-up values" in done.stderr
    assert "--allow-mixed" in done.stderr and "row 6, column smd_basis" in done.stderr
    mixed = invoke("pool", DEPRESSION, "--measure", "SMD", "--allow-mixed", "--json")
    assert mixed.exit_code == 0 and json.loads(mixed.stdout)["k"] == 7


def test_where_selects_rows_and_is_repeatable():
    done = invoke("pool", DEPRESSION, "--measure", "SMD", "--where", "smd_basis=final", "--where",
                  "smd_basis=adjusted", "--where", "smd_basis=not_stated", "--where", "smd_basis=odds_ratio",
                  "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["estimate"] == pytest.approx(published("depression")["estimate"], rel=1e-12)
    missing = invoke("pool", DEPRESSION, "--measure", "SMD", "--where", "colour=red")
    assert missing.exit_code == 1 and "no column 'colour'" in missing.stderr
    bad = invoke("pool", DEPRESSION, "--measure", "SMD", "--where", "smd_basis")
    assert bad.exit_code == 1 and "COLUMN=VALUE" in bad.stderr


def test_the_user_guide_metareg_example_selects_one_site():
    done = invoke("metareg", RISK, "--measure", "HR", "--mod", "dose_met_h_week", "--where", "cancer_site=colon",
                  "--ci", "knha", "--json")
    assert done.exit_code == 0, done.output
    colon = sum(1 for line in open(RISK, encoding="utf-8") if ",colon,cancer_incidence," in line)
    assert json.loads(done.stdout)["k"] == colon >= 10
    spec = invoke("metareg", "--spec", "risk-colon", "--root", ROOT, "--json")
    assert spec.exit_code == 0 and json.loads(spec.stdout)["k"] == colon


def test_a_sheet_or_a_spec_not_both_nor_neither():
    assert "not both" in invoke("pool", DEPRESSION, "--spec", "depression", "--root", ROOT).stderr
    assert "--spec NAME" in invoke("pool").stderr
    assert "--measure is required" in invoke("pool", DEPRESSION).stderr
    assert "known: " in invoke("pool", "--spec", "nope", "--root", ROOT).stderr


@pytest.mark.parametrize("command", ["pool", "bias"])
def test_knha_is_the_default_interval_and_level_is_accepted(command):
    done = invoke(command, REFERENCE / "datasets" / "bcg_rr.csv", "--measure", "RR", "--level", "90", "--json")
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result.get("ci_method", "knha") == "knha"


def test_metareg_takes_ci_and_level():
    sheet = REFERENCE / "metareg" / "bcg.csv"
    knha = json.loads(invoke("metareg", sheet, "--measure", "GEN", "--mod", "ablat", "--json").stdout)
    z = json.loads(invoke("metareg", sheet, "--measure", "GEN", "--mod", "ablat", "--ci", "z", "--level", "90",
                          "--json").stdout)
    assert knha["test"] == "knha" and z["test"] == "z" and z["level"] == 90


def test_a_warning_is_said_once():
    done = invoke("pool", REFERENCE / "datasets" / "bcg_rr.csv", "--measure", "RR", "--where", "year=1948")
    assert done.exit_code == 0
    assert (done.stdout + done.stderr).lower().count("k = 1:") == 1


def test_validate_run_and_diff_print_json(tmp_path):
    for folder in ("extraction", "analyses"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy2(ROOT / "review.toml", tmp_path / "review.toml")
    validate = json.loads(invoke("validate", "--root", tmp_path, "--json").stdout)
    assert validate["ok"] is True and validate["specs"] >= 10 and validate["problems"] == []
    run = invoke("run", "--root", tmp_path, "--json", "--date", "2026-12-08")
    assert run.exit_code == 0, run.output
    assert set(json.loads(run.stdout)) == {"analyses", "recomputed", "written", "published"}
    diff = json.loads(invoke("diff", "--root", tmp_path, "--json").stdout)
    assert diff["revision"] is None and isinstance(diff["changes"], list)


def test_run_force_on_the_shipped_review_rewrites_no_published_file(tmp_path):
    for folder in ("extraction", "analyses", "site"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy2(ROOT / "review.toml", tmp_path / "review.toml")
    done = subprocess.run([sys.executable, "-m", "meta.cli.main", "run", "--force", "--json", "--root", str(tmp_path),
                           "--date", "2026-12-08"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["written"] == [] and report["published"] == [] and len(report["recomputed"]) == report["analyses"]

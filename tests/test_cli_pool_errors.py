"""Bad input to `meta pool`: every problem with file, row, column and fix, exit code 1, no traceback."""

import json

import pytest
from click.testing import CliRunner

from meta.cli.main import main


def run(tmp_path, text, *args, name="sheet.csv"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return CliRunner().invoke(main, ["pool", str(path), *args]), str(path)


CASES = [
    ("missing column", "study,year,events_treat,n_treat,events_ctrl\nA,2000,1,10,2\nB,2001,2,20,3\n",
     ["RR"], ["column n_ctrl", "missing", "add a 'n_ctrl' column"]),
    ("two groups", "study,year,yi,vi,estimate,ci_lower,ci_upper\nA,2000,0.1,0.02,0.9,0.8,1.1\nB,2001,0.2,0.03,,,\n",
     ["GEN"], ["row 1", "more than one effect group", "keep one group"]),
    ("text in numeric", "study,year,yi,vi\nA,2000,0.1,abc\nB,2001,0.2,0.03\n",
     ["GEN"], ["row 1, column vi", "'abc' is not a number"]),
    ("events > n", "study,year,events_treat,n_treat,events_ctrl,n_ctrl\nA,2000,45,40,2,40\nB,2001,2,20,3,20\n",
     ["RR"], ["row 1, column events_treat", "events_treat (45) is larger than n_treat (40)"]),
    ("sd <= 0", "study,year,mean_treat,sd_treat,n_treat,mean_ctrl,sd_ctrl,n_ctrl\nA,2000,1,0,10,2,1,10\nB,2001,1,1,10,2,1,10\n",
     ["SMD"], ["row 1, column sd_treat", "is not positive"]),
    ("CI not containing estimate", "study,year,estimate,ci_lower,ci_upper\nA,2000,0.5,0.6,0.9\nB,2001,0.8,0.7,0.9\n",
     ["HR"], ["row 1", "does not contain the estimate 0.5"]),
    ("vi <= 0", "study,year,yi,vi\nA,2000,0.1,0\nB,2001,0.2,-0.1\n",
     ["GEN"], ["row 1, column vi", "row 2, column vi", "not positive"]),
    ("d with one person in an arm", "study,year,d,n_treat,n_ctrl\nA,2000,-0.4,1,20\nB,2001,0.2,15,15\n",
     ["SMD"], ["row 1, column n_treat", "n_treat (1) is below 2"]),
    ("d without n", "study,year,d,n_treat,n_ctrl\nA,2000,-0.4,,20\nB,2001,0.2,15,15\n",
     ["SMD"], ["row 1, column n_treat", "n_treat is empty", "a standardised row needs d, n_treat, n_ctrl"]),
    ("d pooled as MD", "study,year,d,n_treat,n_ctrl\nA,2000,-0.4,20,20\nB,2001,0.2,15,15\n",
     ["MD"], ["standardised columns cannot give MD", "use --measure SMD"]),
    ("binary rows pooled as SMD", "study,year,events_treat,n_treat,events_ctrl,n_ctrl\nA,2000,3,20,6,20\nB,2001,2,15,5,15\n",
     ["SMD"], ["binary columns cannot give SMD", "smd_basis = odds_ratio"]),
    ("neither n nor non-events", "study,year,events_treat,nonevents_treat,events_ctrl,n_ctrl\nA,2000,3,,6,20\nB,2001,2,13,5,15\n",
     ["OR"], ["row 1, column n_treat", "n_treat or nonevents_treat is empty",
              "a binary row needs events_treat, n_treat or nonevents_treat, events_ctrl, n_ctrl or nonevents_ctrl"]),
    ("n and non-events disagree", "study,year,events_treat,n_treat,nonevents_treat,events_ctrl,n_ctrl\n"
     "A,2000,3,20,16,6,20\nB,2001,2,15,13,5,15\n",
     ["OR"], ["row 1, column n_treat,nonevents_treat", "n_treat (20) is not events_treat + nonevents_treat (3 + 16)",
              "give n_treat or nonevents_treat, not both"]),
    ("negative non-events", "study,year,events_treat,nonevents_treat,events_ctrl,nonevents_ctrl\nA,2000,3,-1,6,14\n"
     "B,2001,2,13,5,10\n", ["OR"], ["row 1, column nonevents_treat", "nonevents_treat (-1) is negative"]),
    ("an arm of nobody", "study,year,events_treat,nonevents_treat,events_ctrl,nonevents_ctrl\nA,2000,0,0,6,14\n"
     "B,2001,2,13,5,10\n", ["OR"], ["row 1, column nonevents_treat", "the arm has no people"]),
    ("MD with a CI not containing it", "study,year,estimate,ci_lower,ci_upper\nA,2000,-25.4,-10.0,13.3\nB,2001,20,5,35\n",
     ["MD"], ["row 1", "the CI -10 to 13.3 does not contain the estimate -25.4"]),
    ("RD outside -1 to 1", "study,year,estimate,ci_lower,ci_upper\nA,2000,-5,-8,-2\nB,2001,0.02,-0.01,0.05\n",
     ["RD"], ["row 1, column estimate", "(-5) is not a risk difference from -1 to 1", "as a proportion"]),
    ("empty sheet", "", ["GEN"], ["the sheet is empty"]),
    ("header only", "study,year,yi,vi\n", ["GEN"], ["no rows"]),
    ("duplicate labels", "study,year,yi,vi\nA,2000,0.1,0.01\nA,2001,0.2,0.02\n",
     ["GEN"], ["row 2, column study", "'A' is used again (first in row 1)"]),
    ("wrong measure", "study,year,yi,vi\nA,2000,0.1,0.01\nB,2001,0.2,0.02\n".replace("yi,vi", "estimate,ci_lower,ci_upper").replace("0.1,0.01", "0.9,0.8,1.1").replace("0.2,0.02", "0.8,0.7,0.9"),
     ["SMD"], ["interval columns cannot give SMD"]),
    ("not utf-8", "study,year,yi,vi\nM\xfcller,2000,0.1,0.01\n".encode("latin-1"), ["GEN"], ["not UTF-8", "save the sheet as CSV UTF-8"]),
    ("ragged row", "study,year,yi,vi\nA,2000,0.1,0.01,9\n", ["GEN"], ["row 1", "5 fields but the header has 4"]),
]


@pytest.mark.parametrize("label, text, measure, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_reported(tmp_path, label, text, measure, expected):
    result, path = run(tmp_path, text, "--measure", *measure)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert path in result.stderr
    for fragment in expected:
        assert fragment in result.stderr, result.stderr
    assert "Fix:" in result.stderr or "not UTF-8" in result.stderr


def test_every_problem_is_reported_at_once(tmp_path):
    text = "study,year,events_treat,n_treat,events_ctrl,n_ctrl\nA,2000,45,40,2,40\nB,x,2,20,3,0\nA,2002,1,10,1,10\n"
    result, _ = run(tmp_path, text, "--measure", "OR")
    assert result.exit_code == 1
    assert "5 problem(s)" in result.stderr
    for fragment in ("row 1, column events_treat", "row 2, column year", "row 2, column n_ctrl",
                     "row 2, column events_ctrl", "row 3, column study"):
        assert fragment in result.stderr


def test_missing_file(tmp_path):
    result = CliRunner().invoke(main, ["pool", str(tmp_path / "nope.csv"), "--measure", "GEN"])
    assert result.exit_code == 1 and "does not exist" in result.stderr


def test_single_study_pools_to_itself_with_warning(tmp_path):
    result, _ = run(tmp_path, "study,year,estimate,ci_lower,ci_upper\nA,2000,0.80,0.64,1.00\n",
                    "--measure", "HR", "--ci", "knha", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["k"] == 1
    assert data["estimate_exp"] == pytest.approx(0.80)
    assert data["tau2"] == 0 and data["i2"] == 0
    assert "k = 1" in result.stderr


def test_zero_cells_are_reported(tmp_path):
    text = "study,year,events_treat,n_treat,events_ctrl,n_ctrl\nA,2000,0,10,2,10\nB,2001,0,20,0,20\nC,2002,3,30,5,30\n"
    keep, _ = run(tmp_path, text, "--measure", "RR", "--json")
    assert json.loads(keep.stdout)["corrected"] == ["A", "B"]
    assert json.loads(keep.stdout)["k"] == 3
    drop, _ = run(tmp_path, text, "--measure", "RR", "--zero-cells", "drop", "--json")
    data = json.loads(drop.stdout)
    assert data["dropped"] == ["B"] and data["corrected"] == ["A"] and data["k"] == 2


def test_asymmetric_ci_warns(tmp_path):
    result, _ = run(tmp_path, "study,year,estimate,ci_lower,ci_upper\nA,2000,0.50,0.45,1.50\nB,2001,0.80,0.70,0.91\n",
                    "--measure", "HR")
    assert result.exit_code == 0
    assert "asymmetric" in result.stderr and "A:" in result.stderr
    assert "B:" not in result.stderr

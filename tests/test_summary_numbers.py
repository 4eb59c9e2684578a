"""summary.csv holds the numbers beside the formatted text: estimate, CI, PI, k, participants, I², tau² on the
natural scale, unformatted, equal to what each analysis.json records."""

from __future__ import annotations

import csv
import json
import math

from .conftest import ROOT

OUTPUT = ROOT / "analyses" / "output"


def test_numeric_columns_equal_the_records():
    rows = list(csv.DictReader((OUTPUT / "summary.csv").open(encoding="utf-8")))
    assert rows
    for row in rows:
        record = json.loads((OUTPUT / row["analysis"] / "analysis.json").read_text())
        result = record["result"]
        exp = row["measure"].split()[0] in ("RR", "OR", "HR")
        estimate = result["estimate_exp"] if exp else result["estimate"]
        assert math.isclose(float(row["estimate"]), estimate, rel_tol=1e-9), row["analysis"]
        assert int(row["k"]) == result["k"] and float(row["i2_percent"]) == float(f"{result['i2']:.10g}")
        assert float(row["ci_lower"]) <= float(row["estimate"]) <= float(row["ci_upper"])
        assert not row["estimate"].startswith("'")

"""Write the second-stage inputs that reference/make_doseresponse_reference.R fits with metafor.

    .venv/bin/python reference/doseresponse/make_inputs.py        (from the repository root)

For every case (a data set, a dose model and a covariance approximation) the engine computes each study's
first-stage GLS coefficients b_i and their covariance V_i (meta.stats.doseresponse); this script writes them to
reference/doseresponse/inputs/<case>.csv, one row per study and coefficient: study, coef (1..p), yi (= b_i[coef])
and v1..vp (the row of V_i). The R script pools them with metafor::rma.mv(yi, V, mods = ~ factor(coef) - 1,
random = ~ factor(coef) | study, struct = "UN"), which is mvmeta's two-stage model (b_i ~ N(beta, Psi + V_i)).
It also writes inputs/cases.csv (case, model, knots) so that R can recompute the spline bases with Hmisc.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from meta.stats.doseresponse import fit_doseresponse

SHARED = ROOT.parent / "shared/reference-data/dose-response"
OUT = ROOT / "reference/doseresponse/inputs"


def example_cases():
    import pandas as pd

    cvd = pd.read_csv(SHARED / "dosresmeta-examples/alcohol_cvd.csv")
    crc = pd.read_csv(SHARED / "dosresmeta-examples/alcohol_crc.csv")
    cvd_args = (cvd.id, cvd.dose, cvd.logrr, cvd.se, cvd.cases, cvd.n, cvd.type)
    crc_args = (crc.id, crc.dose, crc.logrr, crc.se, crc.cases, crc.peryears, crc.type)
    yield "cvd_linear_gl", cvd_args, {"model": "linear", "covariance": "gl"}
    yield "cvd_quadratic_gl", cvd_args, {"model": "quadratic", "covariance": "gl"}
    yield "cvd_quadratic_hamling", cvd_args, {"model": "quadratic", "covariance": "hamling"}
    yield "crc_linear_gl", crc_args, {"model": "linear", "covariance": "gl"}
    yield "crc_rcs_gl", crc_args, {"model": "rcs", "covariance": "gl"}
    yield "crc_rcs_hamling", crc_args, {"model": "rcs", "covariance": "hamling"}
    yield "crc_rcs4_gl", crc_args, {"model": "rcs", "covariance": "gl",
                                        "knots": np.quantile(crc.dose, [0.05, 0.35, 0.65, 0.95])}


def garcia_cases():
    from test_doseresponse_garcia import OUTCOMES, garcia_inputs

    for outcome in OUTCOMES:
        inp = garcia_inputs(outcome)
        yield f"garcia_{outcome}", inp["args"], {"model": "rcs", "knots": inp["knots"],
                                                      "covariance": "hamling-2017", "fallback": "gl", "lenient": True}


def write_case(name, args, options):
    fit = fit_doseresponse(*args, method="FE", **options)
    p = fit.coefficients.size
    with open(OUT / f"{name}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["study", "coef", "yi"] + [f"v{j + 1}" for j in range(p)])
        for s in fit.studies:
            for i in range(p):
                w.writerow([s.study, i + 1, repr(float(s.coefficients[i]))] + [repr(float(x)) for x in s.vcov[i]])
    knots = "" if fit.knots is None else " ".join(repr(float(k)) for k in fit.knots)
    return [name, fit.model, fit.covariance_used, knots]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rows = [write_case(*case) for case in [*example_cases(), *garcia_cases()]]
    with open(OUT / "cases.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case", "model", "covariance_used", "knots"])
        w.writerows(rows)
    print(f"wrote {len(rows)} cases to {OUT}")


if __name__ == "__main__":
    main()

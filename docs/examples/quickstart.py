"""A worked example of the library: pool a published dataset, look at it, check it against metafor,
then re-run one of the review's analyses. Run from the project folder: python docs/examples/quickstart.py

Data: metafor's dat.bcg (Colditz et al. 1994, JAMA 271:698), 13 trials of the BCG vaccine against
tuberculosis, as events and totals per arm (reference/datasets/bcg_rr.csv).
"""

import math

import pandas as pd

import meta

# 1. Pool: a path or a DataFrame in the sheet vocabulary; REML with Knapp-Hartung intervals by default.
bcg = pd.read_csv("reference/datasets/bcg_rr.csv")
result = meta.pool(bcg, measure="RR", method="REML", ci="z")
print(result)                 # PoolResult(RR 0.49 [0.34, 0.70], k=13, REML, I²=92%)
print(result.summary())

# 2. The same numbers metafor prints: rma(measure = "RR", ai, n1i, ci, n2i, data = dat.bcg, method = "REML")
#    (written by reference/make_reference.R into reference/metafor_reference.csv).
metafor = pd.read_csv("reference/metafor_reference.csv", dtype={"options": str}, keep_default_na=False)
row = metafor[(metafor.dataset == "bcg_rr") & (metafor.method == "REML") & (metafor.ci == "z")].iloc[0]
for name in ("estimate", "se", "ci_lower", "ci_upper", "tau2", "i2", "q"):
    assert math.isclose(getattr(result, name), float(row[name]), rel_tol=1e-6), name

# 3. Per-study rows, the one-row frame with back-transformed columns, the JSON contract.
studies = result.studies()
print(studies.round(3).to_string(index=False))
assert math.isclose(studies["weight"].sum(), 100.0)
frame = result.to_frame()
assert math.isclose(frame.loc[0, "estimate_exp"], math.exp(result.estimate))
assert result.to_dict()["k"] == 13

# 4. The forest plot (a matplotlib Figure; PNG or SVG by the file's suffix).
figure = result.forest("docs/examples/bcg-forest.png", title="BCG vaccine and tuberculosis",
                       favours=("vaccine", "control"))

# 5. Small-study tests and meta-regression on absolute latitude (a column of the sheet).
report = meta.bias(bcg, measure="RR")
print(report.to_dict()["egger_p"])
latitude = pd.read_csv("reference/metareg/bcg.csv")[["study", "ablat"]]  # metafor's dat.bcg$ablat (degrees)
bcg = bcg.merge(latitude, on="study")
regression = meta.metareg(bcg, measure="RR", mods=["ablat"])
print(regression.coefficient("ablat"))

# 6. Bad input is a MetaError that names the row and column and says how to fix it.
broken = bcg.copy()
broken.loc[2, "n_treat"] = -5
try:
    meta.pool(broken, measure="RR")
except meta.SheetError as error:
    problem = error.problems[0]
    print(problem)
    assert (problem.row, problem.column) == (3, "n_treat")

# 7. The review's own analyses, exactly as `meta run` pools them.
review = meta.Review(".")
print(review.pool("depression"))
assert review.validate().ok

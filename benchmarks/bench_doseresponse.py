"""Benchmark of the dose-response engine on the 19 cancer curves of Garcia et al. 2023.

1. Python: each curve fitted as the repository does (Hamling's covariance with the Greenland-Longnecker fallback,
   restricted cubic spline, two-stage REML) and predicted on its 1,000-dose grid; total wall time over ``--repeat``
   runs (best of), for ``optimum="converged"`` and ``optimum="mvmeta"``.
2. R, when Rscript with metafor is present: the same 19 second stages (the engine's first-stage b_i, V_i in
   reference/doseresponse/inputs/) with metafor::rma.mv by REML, timed with system.time by
   ``Rscript reference/make_doseresponse_reference.R --time``. R fits only the second stage (no pseudo-counts, no
   first stage, no predictions), so its time is a lower bound of a full R analysis.

Usage: .venv/bin/python benchmarks/bench_doseresponse.py [--repeat 3] [--skip-r]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_doseresponse_garcia import OUTCOMES, garcia_inputs

from meta.stats.doseresponse import fit_doseresponse


def run_python(inputs, optimum):
    start = time.perf_counter()
    for inp in inputs:
        fit = fit_doseresponse(*inp["args"], model="rcs", knots=inp["knots"], covariance="hamling-2017",
                               fallback="gl", lenient=True, optimum=optimum)
        fit.predict(inp["grid"], reference=inp["grid"][0])
    return time.perf_counter() - start


def run_r():
    if shutil.which("Rscript") is None:
        return "Rscript not found"
    proc = subprocess.run(["Rscript", "reference/make_doseresponse_reference.R", "--time"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    return (proc.stdout.strip() or proc.stderr.strip().splitlines()[-1]) if proc.returncode == 0 else proc.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-r", action="store_true")
    args = parser.parse_args()
    inputs = [garcia_inputs(o) for o in OUTCOMES]
    for optimum in ("converged", "mvmeta"):
        best = min(run_python(inputs, optimum) for _ in range(args.repeat))
        print(f"Python engine, {len(inputs)} curves (pseudo-counts, GLS, REML, 1,000-dose prediction), "
              f"optimum={optimum}: {best:.3f} s (best of {args.repeat})")
    if not args.skip_r:
        print(run_r())


if __name__ == "__main__":
    main()

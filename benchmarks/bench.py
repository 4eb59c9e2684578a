"""Benchmark of `meta batch` against metafor and PyMARE (`make bench`).

1. A fixed-seed synthetic batch of 2,000 analyses (k uniform on 2..50) is pooled by REML with the
   Knapp-Hartung interval, the prediction interval and the Q-profile CI of tau^2:
   - by `meta batch`'s engine (the whole path: long CSV -> checks -> yi/vi -> pool -> Parquet;
     and ``pool_batch`` alone),
   - by PyMARE (``VarianceBasedLikelihoodEstimator(method="REML")``, Knapp-Hartung by default, with
     its Q-profile ``get_re_stats``), one analysis at a time and with the analyses of equal k
     stacked as its parallel datasets,
   - by metafor through Rscript (``rma(method = "REML", test = "knha")``, ``predict``, ``confint``)
     when Rscript with metafor is present.
   Estimates and tau^2 are compared with metafor's wherever metafor converges (tolerance 1e-6).
2. 1,000,000 analyses (k 2..50) are streamed through `meta batch` from a Parquet file, with the
   local and the dask engine, each in its own process: wall time and peak resident memory.

Usage: .venv/bin/python benchmarks/bench.py [--analyses 2000] [--stream 1000000] [--skip-r]
       [--skip-pymare] [--skip-dask] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from meta.batch.engine import open_long_file, run_batch, write_results
from meta.stats.options import EffectOptions, PoolOptions
from meta.stats.pooling import pool_batch

ROOT = Path(__file__).resolve().parent.parent

SEED = 20240601
OPTIONS = PoolOptions(method="REML", ci="knha")
TOLERANCE = 1e-6

R_SCRIPT = r"""
suppressPackageStartupMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], colClasses = c("character", "numeric", "numeric"))
groups <- split(d[, c("yi", "vi")], factor(d$analysis, levels = unique(d$analysis)))
out <- data.frame(analysis = names(groups), estimate = NA_real_, tau2 = NA_real_, ci_lower = NA_real_,
                  ci_upper = NA_real_, pi_lower = NA_real_, pi_upper = NA_real_,
                  tau2_ci_lower = NA_real_, tau2_ci_upper = NA_real_)
start <- proc.time()[["elapsed"]]
for (j in seq_along(groups)) {
  g <- groups[[j]]
  fit <- tryCatch(rma(g$yi, g$vi, method = "REML", test = "knha"), error = function(e) NULL)
  if (is.null(fit)) next
  pr <- predict(fit)
  ci <- tryCatch(confint(fit)$random["tau^2", 2:3], error = function(e) c(NA, NA))
  out[j, -1] <- c(fit$b[1], fit$tau2, fit$ci.lb, fit$ci.ub, pr$pi.lb, pr$pi.ub, ci[1], ci[2])
}
elapsed <- proc.time()[["elapsed"]] - start
write.csv(out, args[2], row.names = FALSE)
cat(sprintf("ELAPSED %.6f\n", elapsed))
cat(sprintf("METAFOR %s\n", as.character(packageVersion("metafor"))))
"""

CHILD = """
import resource, sys
from meta.cli.batch import batch
try:
    batch.main(sys.argv[1:], standalone_mode=False)
finally:
    print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
"""


def synthetic(n: int, seed: int = SEED):
    """k ~ U{2..50}; tau^2 = 0 (30%) or Exp(mean 0.1); v ~ U(0.01, 0.5); y ~ N(mu, v + tau^2)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(2, 51, n)
    tau2 = np.repeat(np.where(rng.random(n) < 0.3, 0.0, rng.exponential(0.1, n)), k)
    vi = rng.uniform(0.01, 0.5, k.sum())
    yi = np.repeat(rng.normal(0, 0.5, n), k) + rng.normal(0, 1, k.sum()) * np.sqrt(vi + tau2)
    return yi, vi, k


def labels(first: int, count: int) -> np.ndarray:
    return np.char.add("a", np.char.zfill(np.arange(first, first + count).astype(str), 7))


def best_of(repeats: int, func) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def machine() -> dict:
    model = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        total_kb = int(handle.readline().split()[1])
    return {"nproc": os.cpu_count(), "cpu": model, "memory_gib": round(total_kb / 2**20, 1),
            "python": platform.python_version(), "numpy": np.__version__,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)")}


def bench_meta(path: Path, workdir: Path, yi, vi, k):
    effect_options = EffectOptions("GEN")

    def whole_path():
        frames = run_batch(open_long_file(path), effect_options, OPTIONS)
        return write_results(frames, workdir / "meta_2000.parquet")

    whole_path()
    engine = best_of(5, lambda: pool_batch(yi, vi, k, OPTIONS, weights=False))
    batch = best_of(3, whole_path)
    tracemalloc.start()
    pool_batch(yi, vi, k, OPTIONS, weights=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return engine, batch, peak, pd.read_parquet(workdir / "meta_2000.parquet")


def bench_pymare(yi, vi, k, per_analysis: bool):
    """PyMARE's REML + Knapp-Hartung fit with its Q-profile tau^2 CI; (seconds, estimate, tau2)."""
    from pymare import Dataset
    from pymare.estimators import VarianceBasedLikelihoodEstimator

    starts = np.concatenate([[0], np.cumsum(k)[:-1]])
    estimate, tau2 = np.full(k.size, np.nan), np.full(k.size, np.nan)

    def fit(Y, V, rows):
        est = VarianceBasedLikelihoodEstimator(method="REML")
        est.fit_dataset(Dataset(y=Y, v=V))
        res = est.summary()
        fe = res.get_fe_stats()
        res.get_re_stats()
        estimate[rows] = np.ravel(fe["est"])
        tau2[rows] = np.ravel(res.tau2)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if per_analysis:
                for j in range(k.size):
                    part = slice(starts[j], starts[j] + k[j])
                    fit(yi[part], vi[part], [j])
            else:
                for size in np.unique(k):
                    rows = np.flatnonzero(k == size)
                    index = starts[rows][None, :] + np.arange(size)[:, None]
                    fit(yi[index], vi[index], rows)

    seconds = best_of(1, run)
    return seconds, estimate, tau2


def bench_metafor(path: Path, workdir: Path):
    if shutil.which("Rscript") is None:
        return None
    script = workdir / "metafor_bench.R"
    script.write_text(R_SCRIPT)
    out = workdir / "metafor_2000.csv"
    run = subprocess.run(["Rscript", str(script), str(path), str(out)], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"metafor skipped: {run.stderr.strip()[:300]}")
        return None
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines() if " " in line)
    return float(lines["ELAPSED"]), lines.get("METAFOR", "?"), pd.read_csv(out, dtype={"analysis": str})


def agreement(ours: pd.DataFrame, theirs: pd.DataFrame, columns) -> dict:
    """Largest |difference| / max(1, |metafor|) per column over the analyses metafor fitted."""
    merged = ours.merge(theirs, on="analysis", suffixes=("", "_ref"))
    fitted = merged["estimate_ref"].notna()
    out = {"metafor_fitted": int(fitted.sum()), "metafor_failed": int((~fitted).sum()),
           "failed_and_flagged": int((~fitted & ~merged["converged"]).sum())}
    for column in columns:
        a, b = merged.loc[fitted, column], merged.loc[fitted, f"{column}_ref"]
        both = a.notna() & b.notna()
        out[column] = float((np.abs(a[both] - b[both]) / np.maximum(1.0, np.abs(b[both]))).max())
    return out


def write_stream_file(path: Path, n: int, piece: int = 100_000) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    with pq.ParquetWriter(path, pa.schema([("analysis", pa.string()), ("yi", pa.float64()),
                                           ("vi", pa.float64())])) as writer:
        for first in range(0, n, piece):
            count = min(piece, n - first)
            yi, vi, k = synthetic(count, SEED + 1 + first // piece)
            writer.write_table(pa.table({"analysis": np.repeat(labels(first, count), k), "yi": yi, "vi": vi}))
            rows += int(k.sum())
    return rows


def stream(path: Path, out: Path, engine: str):
    command = [sys.executable, "-c", CHILD, str(path), "--measure", "GEN", "--method", "REML", "--ci", "knha",
               "--out", str(out), "--engine", engine, "--no-progress"]
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"meta batch failed:\n{run.stderr[-2000:]}")
    peak = [line.split()[1:] for line in run.stderr.splitlines() if line.startswith("PEAK_RSS_KB")][0]
    summary = [line for line in run.stderr.splitlines() if "analyses pooled" in line or "did not converge" in line]
    return seconds, int(peak[0]) / 1024, int(peak[1]) / 1024, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyses", type=int, default=2000)
    parser.add_argument("--stream", type=int, default=1_000_000)
    parser.add_argument("--skip-r", action="store_true")
    parser.add_argument("--skip-pymare", action="store_true")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="meta-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print("machine:", machine())

    n = args.analyses
    yi, vi, k = synthetic(n)
    path = workdir / "batch_2000.csv"
    pd.DataFrame({"analysis": np.repeat(labels(0, n), k), "yi": yi, "vi": vi}).to_csv(path, index=False)
    print(f"\n== {n} analyses, k 2..50 ({k.sum()} studies): REML + Knapp-Hartung + PI + Q-profile tau^2 CI")
    engine, whole, peak, ours = bench_meta(path, workdir, yi, vi, k)
    per = {"meta engine (pool_batch)": engine, "meta batch (CSV in, Parquet out)": whole}
    flagged = int((~ours["converged"]).sum())
    print(f"meta: {flagged} analyses flagged converged=false; engine peak memory {peak / 2**20:.1f} MiB "
          "(tracemalloc)")
    if not args.skip_pymare:
        seconds, p_est, p_tau2 = bench_pymare(yi, vi, k, per_analysis=False)
        per["PyMARE, equal-k analyses stacked"] = seconds
        seconds, _, _ = bench_pymare(yi, vi, k, per_analysis=True)
        per["PyMARE, one analysis at a time"] = seconds
        pymare = pd.DataFrame({"analysis": labels(0, n), "estimate": p_est, "tau2": p_tau2})
    metafor = None if args.skip_r else bench_metafor(path, workdir)
    if metafor is not None:
        per[f"metafor {metafor[1]} (Rscript loop)"] = metafor[0]
    print(f"\n{'':40s} {'total s':>9s} {'ms/analysis':>12s} {'/ meta engine':>14s} {'/ meta batch':>13s}")
    for name, seconds in per.items():
        print(f"{name:40s} {seconds:9.3f} {seconds / n * 1000:12.4f} {seconds / engine:14.1f} {seconds / whole:13.1f}")
    if metafor is not None:
        ours_agree = agreement(ours, metafor[2], ["estimate", "tau2", "ci_lower", "ci_upper", "pi_lower",
                                                  "pi_upper", "tau2_ci_lower", "tau2_ci_upper"])
        print("\nagreement with metafor (max |diff| / max(1, |metafor|)):", ours_agree)
        worst = max(ours_agree["estimate"], ours_agree["tau2"])
        print(f"estimate and tau2 within {TOLERANCE:g} of metafor wherever it converged: {worst <= TOLERANCE}")
        if not args.skip_pymare:
            print("PyMARE vs metafor:", agreement(pymare.assign(converged=True), metafor[2], ["estimate", "tau2"]))

    if args.stream:
        print(f"\n== streaming {args.stream:,} analyses (k 2..50) from Parquet")
        big = workdir / f"stream_{args.stream}.parquet"
        start = time.perf_counter()
        rows = write_stream_file(big, args.stream)
        print(f"generated {rows:,} rows in {time.perf_counter() - start:.1f} s ({big.stat().st_size / 2**20:.0f} MiB)")
        for engine_name in ["local"] + ([] if args.skip_dask else ["dask"]):
            seconds, peak, children, summary = stream(big, workdir / f"stream_out_{engine_name}.parquet", engine_name)
            print(f"engine {engine_name}: {seconds:.1f} s wall ({args.stream / seconds:,.0f} analyses/s), "
                  f"peak RSS {peak:.0f} MiB (largest child process {children:.0f} MiB); {'; '.join(summary)}")
    if args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()

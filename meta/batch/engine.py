"""Pool many analyses from one long file, streamed in chunks (``meta batch``).

The file (CSV or Parquet) has one row per study result: a column ``analysis`` naming the analysis
the row belongs to, then the effect columns of any group (the sheet vocabulary of docs/ARCHITECTURE.md, one group per
row); the rows of one analysis are next to each other. It is read a chunk of rows at a time
(pandas ``read_csv(chunksize=)``, pyarrow ``iter_batches``) and an analysis cut by the end of a
chunk is carried into the next, so memory is bounded by the chunk size, not the file size. Each
chunk of whole analyses is checked (every problem with its row and column, as ``sheets.py``), turned
into yi/vi by the formulas of ``effects.py`` written over arrays (metafor's ``escalc``) and pooled by
one ``pool_batch`` call, here or on a dask.distributed cluster; results come back in file order,
one row per analysis, with ``converged`` and ``iterations`` so that a fit that did not converge is
flagged rather than silently wrong.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from meta.errors import MetaError, Problem, SheetError
from meta.sheets.load import COUNT_COLUMNS, TWO_PER_ARM
from meta.stats.distributions import norm_isf
from meta.stats.effects import (
    DIFFERENCE_MEASURES,
    GROUP_MARKERS,
    GROUPS,
    MEASURES_OF_GROUP,
    REQUIRED,
    describe_requirements,
    requirement_names,
    smd_from_d,
)
from meta.stats.options import RATIO_MEASURES, EffectOptions, PoolOptions
from meta.stats.pooling import pool_batch
from meta.stats.results import CONTRACT_FIELDS

DEFAULT_CHUNK_ROWS = 500_000
EFFECT_COLUMNS = tuple(dict.fromkeys(c for columns in GROUPS.values() for c in columns))
GROUP_NAMES = tuple(GROUPS)
FIT_FIELDS = ("k", "estimate", "se", "ci_lower", "ci_upper", "p", "pi_lower", "pi_upper", "tau2",
              "tau2_ci_lower", "tau2_ci_upper", "i2", "h2", "q", "q_p", "converged", "iterations")
BACK_TRANSFORMED = ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")
MAX_LISTED = 20  # problems listed per chunk; the rest are counted


class BatchError(MetaError):
    """A long file that cannot be read as a batch (format, engine)."""


def output_columns(measure: str) -> tuple[str, ...]:
    """Columns of the results: analysis, the results contract, exp() of it for ratios, status."""
    back = tuple(f"{name}_exp" for name in BACK_TRANSFORMED) if measure in RATIO_MEASURES else ()
    return ("analysis",) + CONTRACT_FIELDS + back + ("converged", "iterations")


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LongFile:
    """A checked long file: its format, the effect columns it has and its size for progress."""

    path: Path
    kind: str  # "csv" or "parquet"
    columns: tuple[str, ...]  # effect columns present, in vocabulary order
    size: int  # bytes (CSV) or rows (Parquet): the unit of ``chunks``' progress positions
    raw_names: tuple[str, ...]  # the header as written (CSV names may carry spaces)

    @property
    def name(self) -> str:
        return str(self.path)

    def chunks(self, chunk_rows: int) -> Iterator[tuple[pd.DataFrame, int]]:
        """(frame, position) per chunk; the frame's index is the 0-based data row."""
        wanted = ["analysis", *self.columns]
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            start = 0
            reader = pq.ParquetFile(self.path, pre_buffer=False)  # pre-buffering holds the whole file
            batches = reader.iter_batches(batch_size=chunk_rows, columns=wanted)
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    return
                except (OSError, ValueError) as err:  # pyarrow's errors derive from these
                    raise SheetError([Problem("not-parquet", self.name, start + 1, "",
                                              f"the file cannot be read from here on ({err})",
                                              "write the file again with a Parquet writer")]) from None
                if batch.num_rows:
                    frame = batch.to_pandas()
                    frame.index = pd.RangeIndex(start, start + len(frame))
                    start += len(frame)
                    yield frame, start
        with open(self.path, "rb") as handle:
            # every column is read (not usecols), so that a row with extra fields is an error
            reader = pd.read_csv(handle, chunksize=chunk_rows, encoding="utf-8-sig",
                                 dtype={c: str for c in self.raw_names if c.strip() == "analysis"})
            while True:
                try:
                    frame = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as err:
                    raise SheetError([Problem("encoding", self.name, 0, "",
                                              f"the file is not UTF-8 (byte {err.start} of a block cannot be decoded)",
                                              "save the file as CSV UTF-8")]) from None
                except (pd.errors.ParserError, ValueError) as err:
                    raise SheetError([Problem("malformed-csv", self.name, 0, "",
                                              f"the CSV cannot be parsed ({str(err).strip()}; lines count "
                                              "from the header)", "quote fields that contain commas; remove "
                                              "stray separators")]) from None
                if len(frame):
                    yield frame.rename(columns=str.strip)[wanted], handle.tell()


def open_long_file(path: Path) -> LongFile:
    """Check that ``path`` is a readable long file with an ``analysis`` column and effect columns."""
    path = Path(path)
    name = str(path)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except FileNotFoundError:
        raise SheetError([Problem("missing-file", name, 0, "", "the file does not exist",
                                  "check the path (relative to the current folder)")]) from None
    except OSError as err:
        raise SheetError([Problem("unreadable-file", name, 0, "", f"the file cannot be read ({err.strerror})",
                                  "check that it is a readable file")]) from None
    if magic == b"PAR1" or path.suffix.lower() in (".parquet", ".pq"):
        raw, size = _parquet_header(path)
        kind = "parquet"
    elif magic.startswith(b"PK\x03\x04"):
        raise SheetError([Problem("not-csv", name, 0, "", "this is a ZIP/XLSX workbook, not a CSV file",
                                  "save the sheet as CSV (UTF-8) or Parquet")])
    else:
        raw, size = _csv_header(path), path.stat().st_size
        kind = "csv"
    header = [name.strip() for name in raw]
    problems = []
    duplicated = sorted({c for c in header if header.count(c) > 1})
    for column in duplicated:
        problems.append(Problem("duplicate-header", name, 0, column, "the column appears twice",
                                "keep one column of that name"))
    if "analysis" not in header:
        problems.append(Problem("missing-column", name, 0, "analysis",
                                "the column 'analysis' (the analysis each row belongs to) is missing",
                                "add an 'analysis' column; the rows of one analysis go next to each other"))
    columns = tuple(c for c in EFFECT_COLUMNS if c in header)
    if not columns:
        problems.append(Problem("no-effect", name, 0, "", "the file has no effect columns",
                                "add one group: yi+vi, estimate+ci_lower+ci_upper, events+n (or non-events), means+SDs+n, or d+n"))
    if problems:
        raise SheetError(problems)
    return LongFile(path, kind, columns, size, tuple(raw))


def _csv_header(path: Path) -> list[str]:
    import csv

    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError:
        raise SheetError([Problem("encoding", str(path), 0, "", "the header is not UTF-8",
                                  "save the file as CSV UTF-8")]) from None
    if not header:
        raise SheetError([Problem("empty-sheet", str(path), 0, "", "the file is empty (no header, no rows)",
                                  "add a header line and one row per study result")])
    return header


def _parquet_header(path: Path) -> tuple[list[str], int]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as err:  # pyarrow raises several types for a file that is not Parquet
        raise SheetError([Problem("not-parquet", str(path), 0, "", f"the file cannot be read as Parquet ({err})",
                                  "write the file with a Parquet writer, or give a CSV file")]) from None
    return list(meta.schema.names), meta.num_rows


@dataclass(frozen=True)
class Chunk:
    """Whole analyses of a stretch of the file; ``frame.index`` holds the 0-based data rows."""

    frame: pd.DataFrame
    runs: np.ndarray  # per row: 0-based number of its analysis within the chunk
    starts: np.ndarray  # first row (position in frame) of each analysis
    position: int  # progress position reached once this chunk is done


def whole_analyses(chunks: Iterable[tuple[pd.DataFrame, int]], name: str) -> Iterator[Chunk]:
    """Re-cut raw chunks at analysis boundaries, carrying a split analysis into the next chunk.

    One raw chunk is read ahead, so the last chunk keeps its last analysis. Raises SheetError if
    an analysis reappears after other analyses (its rows not contiguous).
    """
    seen: set = set()
    raw = iter(chunks)
    current = next(raw, None)
    carry = None
    while current is not None:
        frame, position = current
        current = next(raw, None)
        if carry is not None:
            frame = pd.concat([carry, frame])
        codes, _ = pd.factorize(frame["analysis"], use_na_sentinel=False)
        cut = len(frame) if current is None else _last_run_start(codes)
        carry = frame.iloc[cut:]
        if cut:
            yield _chunk(frame.iloc[:cut], codes[:cut], position, seen, name)


def _last_run_start(codes: np.ndarray) -> int:
    changes = np.flatnonzero(codes[1:] != codes[:-1])
    return int(changes[-1]) + 1 if changes.size else 0


def _chunk(frame, codes, position, seen: set, name) -> Chunk:
    starts = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1])
    ids = frame["analysis"].iloc[starts]
    run_ids = ids.tolist()
    problems = []
    if len(set(run_ids)) < len(run_ids) or not seen.isdisjoint(run_ids):
        first = {}
        for start, label in zip(starts, run_ids):
            if label in seen or label in first:
                where = f"first seen in row {first[label]}" if label in first else "it appears earlier in the file"
                problems.append(Problem("split-analysis", name, int(frame.index[start]) + 1, "analysis",
                                        f"the rows of analysis '{label}' continue here after other analyses "
                                        f"({where})", "sort the file so that the rows of each analysis are together"))
            first.setdefault(label, int(frame.index[start]) + 1)
    if problems:
        raise SheetError(_capped(problems))
    seen.update(run_ids)
    runs = np.repeat(np.arange(starts.size), np.diff(np.append(starts, len(frame))))
    return Chunk(frame, runs, starts, position)


# --- checks and effect sizes --------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkEffects:
    """Effect sizes of the whole analyses of a chunk, ready to pool."""

    ids: pd.Series  # one label per analysis
    yi: np.ndarray
    vi: np.ndarray
    sizes: np.ndarray  # studies per analysis (after any left out)
    position: int


def chunk_effects(chunk: Chunk, name: str, options: EffectOptions) -> ChunkEffects:
    """Check every row of a chunk and compute its effect sizes; SheetError lists the problems."""
    frame = chunk.frame
    rows = frame.index.to_numpy() + 1
    columns, problems = _typed_columns(frame, rows, name)
    problems += _row_problems(rows, frame["analysis"].isna().to_numpy(), "missing-value", name, "analysis",
                              lambda i: "the analysis label is empty", "give every row the name of its analysis")
    group, group_problems = check_rows(columns, rows, name, options.measure)
    problems += group_problems
    if problems:
        raise SheetError(_capped(problems))
    yi, vi, keep = effect_arrays(columns, group, options)
    sizes = np.bincount(chunk.runs[keep], minlength=chunk.starts.size)
    ids = frame["analysis"].iloc[chunk.starts].reset_index(drop=True)
    empty = np.flatnonzero(sizes == 0)
    if empty.size:
        raise SheetError(_capped([
            Problem("nothing-to-pool", name, int(rows[chunk.starts[j]]), "analysis",
                    f"every study of analysis '{ids.iloc[j]}' was left out (no events in either arm)",
                    "use --zero-cells keep, or choose RD") for j in empty]))
    return ChunkEffects(ids, yi[keep], vi[keep], sizes, chunk.position)


def _typed_columns(frame: pd.DataFrame, rows: np.ndarray, name: str):
    """Every effect column as float64 (NaN where empty), with a problem per cell that is no number."""
    columns, problems = {}, []
    for column in EFFECT_COLUMNS:
        if column not in frame.columns:
            continue
        raw = frame[column]
        if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
            values = raw.to_numpy(dtype=float, na_value=np.nan)
        else:
            values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            text = raw.to_numpy(dtype=object)
            problems += _row_problems(rows, np.isnan(values) & raw.notna().to_numpy(), "not-a-number", name,
                                      column, lambda i, t=text: f"'{t[i]}' is not a number",
                                      "write a plain number with a decimal point (e.g. 0.85), or leave it empty")
        problems += _row_problems(rows, np.isinf(values), "not-a-number", name, column,
                                  lambda i: "the value is not finite", "write a finite number")
        if column in COUNT_COLUMNS:
            with np.errstate(invalid="ignore"):
                fraction = np.isfinite(values) & (values != np.round(values))
            problems += _row_problems(rows, fraction, "not-a-count", name, column,
                                      lambda i, v=values: f"{v[i]:g} is not a whole number",
                                      "counts are whole numbers of people")
        columns[column] = values
    return columns, problems


def check_rows(columns: dict[str, np.ndarray], rows: np.ndarray, name: str,
               measure: str) -> tuple[np.ndarray, list[Problem]]:
    """The effect group of each row (an index into GROUP_NAMES) and every problem of its values.

    The checks of ``sheets.check_effect_table`` over arrays: exactly one group per row, a group
    that can give ``measure``, its required values filled and in range.
    """
    n = rows.size
    filled = {c: ~np.isnan(v) for c, v in columns.items()}
    none = np.zeros(n, dtype=bool)
    present = np.stack([np.logical_or.reduce([filled.get(c, none) for c in GROUP_MARKERS[g]])
                        for g in GROUP_NAMES])
    count = present.sum(axis=0)
    group = present.argmax(axis=0)
    problems = _row_problems(rows, count == 0, "no-effect", name, "", lambda i: "no effect columns are filled",
                             "fill one group: yi+vi, estimate+ci_lower+ci_upper, events+n (or non-events), means+SDs+n, or d+n")
    for i in np.flatnonzero(count > 1)[:MAX_LISTED]:
        used = [c for g in GROUP_NAMES for c in GROUP_MARKERS[g] if c in filled and filled[c][i]]
        problems.append(Problem("two-effect-groups", name, int(rows[i]), ",".join(used),
                                "the row fills more than one effect group",
                                "keep one group of effect columns per row; move the other result to its own row"))
    problems += _more(count > 1, name, "two-effect-groups")
    for g, group_name in enumerate(GROUP_NAMES):
        mine = (count == 1) & (group == g)
        if not mine.any():
            continue
        if measure not in MEASURES_OF_GROUP[group_name]:
            problems += _row_problems(rows, mine, "wrong-measure", name, "",
                                      lambda i, gn=group_name: f"{gn} columns cannot give {measure}",
                                      f"use --measure {' or '.join(MEASURES_OF_GROUP[group_name])} for this file")
            continue
        unusable = np.zeros(n, dtype=bool)
        for requirement in REQUIRED[group_name]:
            names = requirement_names(requirement)
            if not any(c in columns for c in names):
                problems.append(Problem("missing-column", name, 0, names[0],
                                        f"rows need the column '{names[0]}', which is missing",
                                        f"add a '{names[0]}' column and fill it"))
                unusable |= mine
                continue
            either = " or ".join(names)
            empty = mine & ~np.logical_or.reduce([filled.get(c, none) for c in names])
            unusable |= empty
            problems += _row_problems(rows, empty, "missing-value", name, names[0], lambda i, e=either: f"{e} is empty",
                                      f"fill {either} (a {group_name} row needs {describe_requirements(group_name)})")
        if group_name == "precomputed":
            no_variance = mine & ~filled.get("vi", none) & ~filled.get("sei", none)
            unusable |= no_variance
            problems += _row_problems(rows, no_variance, "missing-value", name, "vi", lambda i: "yi has no vi or sei",
                                      "give the sampling variance vi or the standard error sei")
        problems += _range_problems(columns, mine & ~unusable, group_name, rows, name, measure)
    return group, problems


def _range_problems(columns, mine, group_name, rows, name, measure) -> list[Problem]:
    """``sheets._range_problems`` over arrays: counts, SDs, ratios and variances in range."""
    out: list[Problem] = []

    def check(bad, column, message, fix):
        with np.errstate(invalid="ignore"):
            out.extend(_row_problems(rows, mine & bad, "out-of-range", name, column, message, fix))

    if not mine.any():
        return out
    if group_name == "binary":
        for arm in ("treat", "ctrl"):
            e = columns[f"events_{arm}"]
            n = columns.get(f"n_{arm}", np.full(e.size, np.nan))
            b = columns.get(f"nonevents_{arm}", np.full(e.size, np.nan))
            check(e < 0, f"events_{arm}", lambda i, e=e, a=arm: f"events_{a} ({e[i]:g}) is negative",
                  "events are counts >= 0")
            check(b < 0, f"nonevents_{arm}", lambda i, b=b, a=arm: f"nonevents_{a} ({b[i]:g}) is negative",
                  "non-events are counts >= 0")
            check(n <= 0, f"n_{arm}", lambda i, n=n, a=arm: f"n_{a} ({n[i]:g}) is not positive",
                  "n counts people analysed (> 0)")
            check(e > n, f"events_{arm}", lambda i, e=e, n=n, a=arm: f"events_{a} ({e[i]:g}) is larger "
                  f"than n_{a} ({n[i]:g})", "check the arm: events cannot exceed the people in it")
            check((n > 0) & (e <= n) & (e + b != n) & ~np.isnan(b), f"n_{arm},nonevents_{arm}",
                  lambda i, e=e, n=n, b=b, a=arm: f"n_{a} ({n[i]:g}) is not events_{a} + nonevents_{a} "
                  f"({e[i]:g} + {b[i]:g})", f"give n_{arm} or nonevents_{arm}, not both, or correct the one that is wrong")
            check(np.isnan(n) & (e + b <= 0), f"nonevents_{arm}",
                  lambda i: "the arm has no people (events and non-events are 0)", "an arm counts people analysed (> 0)")
    elif group_name in TWO_PER_ARM:
        for arm in ("treat", "ctrl"):
            n = columns[f"n_{arm}"]
            if group_name == "continuous":
                sd = columns[f"sd_{arm}"]
                check(sd <= 0, f"sd_{arm}", lambda i, sd=sd, a=arm: f"sd_{a} ({sd[i]:g}) is not positive",
                      "an SD is > 0; if the source gives an SE or CI, convert it and say so in notes")
            check(n < 2, f"n_{arm}", lambda i, n=n, a=arm: f"n_{a} ({n[i]:g}) is below 2", TWO_PER_ARM[group_name])
    elif group_name == "interval":
        est, lo, hi = columns["estimate"], columns["ci_lower"], columns["ci_upper"]
        values = (("estimate", est), ("ci_lower", lo), ("ci_upper", hi))
        with np.errstate(invalid="ignore"):
            if measure not in DIFFERENCE_MEASURES:
                for column, v in values:
                    check(v <= 0, column, lambda i, v=v, c=column: f"{c} ({v[i]:g}) is not positive",
                          "ratios and their limits are > 0 on the natural scale")
                in_range = (est > 0) & (lo > 0) & (hi > 0)
            elif measure == "RD":
                for column, v in values:
                    check(np.abs(v) > 1, column, lambda i, v=v, c=column: f"{c} ({v[i]:g}) is not a risk difference "
                          "from -1 to 1", "write a risk difference as a proportion (e.g. -0.05 for 5 percentage points)")
                in_range = (np.abs(est) <= 1) & (np.abs(lo) <= 1) & (np.abs(hi) <= 1)
            else:
                in_range = np.ones(est.size, dtype=bool)
            contains = (lo <= est) & (est <= hi) & (lo < hi)
        check(in_range & ~contains, "ci_lower,ci_upper",
              lambda i: f"the CI {lo[i]:g} to {hi[i]:g} does not contain the estimate {est[i]:g}",
              "check that estimate, ci_lower and ci_upper are in the right columns")
        if "ci_level" in columns:
            level = columns["ci_level"]
            with np.errstate(invalid="ignore"):
                outside = ~np.isnan(level) & ~((level >= 50) & (level < 100))
            check(outside, "ci_level", lambda i: f"ci_level ({level[i]:g}) is not a percentage from 50 to 99.9",
                  "write the level in percent (e.g. 95)")
    else:
        for column in ("vi", "sei"):
            if column in columns:
                v = columns[column]
                check(v <= 0, column, lambda i, v=v, c=column: f"{c} ({v[i]:g}) is not positive",
                      "a sampling variance or SE is > 0")
    return out


def effect_arrays(columns: dict[str, np.ndarray], group: np.ndarray,
                  options: EffectOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """yi, vi and the rows kept, for checked rows: ``effects.compute_effects`` over arrays.

    The same operations in the same order as effects.py (metafor's escalc conventions), so the
    numbers are the same to the last bit.
    """
    n = group.size
    measure = options.measure
    yi = np.full(n, np.nan)
    vi = np.full(n, np.nan)
    keep = np.ones(n, dtype=bool)

    def col(name, rows):
        return columns[name][rows]

    with np.errstate(divide="ignore", invalid="ignore"):
        rows = group == GROUP_NAMES.index("precomputed")
        if rows.any():
            yi[rows] = col("yi", rows)
            v = col("vi", rows) if "vi" in columns else np.full(rows.sum(), np.nan)
            if "sei" in columns:
                v = np.where(np.isnan(v), col("sei", rows) ** 2, v)
            vi[rows] = v
        rows = group == GROUP_NAMES.index("interval")
        if rows.any():
            level = col("ci_level", rows) if "ci_level" in columns else np.full(rows.sum(), np.nan)
            level = np.where(np.isnan(level), 95.0, level)
            z = norm_isf((1 - level / 100) / 2)
            if measure in DIFFERENCE_MEASURES:
                yi[rows] = col("estimate", rows)
                vi[rows] = ((col("ci_upper", rows) - col("ci_lower", rows)) / (2 * z)) ** 2
            else:
                sei = (np.log(col("ci_upper", rows)) - np.log(col("ci_lower", rows))) / (2 * z)
                yi[rows] = np.log(col("estimate", rows))
                vi[rows] = sei**2
        rows = group == GROUP_NAMES.index("binary")
        if rows.any():
            a, c = col("events_treat", rows), col("events_ctrl", rows)
            b, d = _nonevents(columns, "treat", rows, a), _nonevents(columns, "ctrl", rows, c)
            if options.zero_cells == "drop" and measure in ("RR", "OR"):
                double_zero = ((a == 0) & (c == 0)) | ((b == 0) & (d == 0))
                keep[np.flatnonzero(rows)[double_zero]] = False
            zero = (a == 0) | (b == 0) | (c == 0) | (d == 0)
            a, b, c, d = (np.where(zero, x + options.add, x) for x in (a, b, c, d))
            yi[rows], vi[rows] = _binary(a, b, c, d, measure)
        rows = group == GROUP_NAMES.index("continuous")
        if rows.any():
            yi[rows], vi[rows] = _continuous(*(col(c, rows) for c in GROUPS["continuous"]), measure,
                                             options.md_variance)
        rows = group == GROUP_NAMES.index("standardised")
        if rows.any():
            yi[rows], vi[rows] = smd_from_d(*(col(c, rows) for c in GROUPS["standardised"]))
    return yi, vi, keep


def _nonevents(columns, arm: str, rows, events):
    """Each row's non-events: as given, or n - events (``effects._nonevents`` over arrays)."""
    total = columns[f"n_{arm}"][rows] - events if f"n_{arm}" in columns else np.full(events.size, np.nan)
    given = columns.get(f"nonevents_{arm}")
    return total if given is None else np.where(np.isnan(given[rows]), total, given[rows])


def _binary(a, b, c, d, measure):
    n1, n2 = a + b, c + d
    p1, p2 = a / n1, c / n2
    if measure == "RR":
        return np.log(p1) - np.log(p2), 1 / a - 1 / n1 + 1 / c - 1 / n2
    if measure == "OR":
        return np.log(p1 / (1 - p1)) - np.log(p2 / (1 - p2)), 1 / a + 1 / b + 1 / c + 1 / d
    return p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2


def _continuous(m1, s1, n1, m2, s2, n2, measure, md_variance):
    m = n1 + n2 - 2
    sp = np.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / m)
    if measure == "MD":
        if md_variance == "pooled":
            return m1 - m2, sp**2 * (1 / n1 + 1 / n2)
        return m1 - m2, s1**2 / n1 + s2**2 / n2
    return smd_from_d((m1 - m2) / sp, n1, n2)


def _row_problems(rows, mask, kind, name, column, message: Callable[[int], str], fix) -> list[Problem]:
    """A problem for each of the first MAX_LISTED rows of ``mask`` (``message(i)`` of position i)."""
    if not mask.any():
        return []
    listed = [Problem(kind, name, int(rows[i]), column, message(i), fix)
              for i in np.flatnonzero(mask)[:MAX_LISTED]]
    return listed + _more(mask, name, kind, column)


def _more(mask, name, kind, column="") -> list[Problem]:
    extra = int(mask.sum()) - MAX_LISTED
    if extra <= 0:
        return []
    return [Problem("more-problems", name, 0, column, f"... and {extra} more row(s) with the problem '{kind}'",
                    "fix the rows listed, then run again to see the rest")]


def _capped(problems: list[Problem]) -> list[Problem]:
    """File-wide problems, then at most MAX_LISTED rows' problems in row order, then counts of the rest."""
    general = [p for p in problems if p.row == 0 and p.kind != "more-problems"]
    counts = [p for p in problems if p.kind == "more-problems"]
    rows = sorted((p for p in problems if p.row > 0), key=lambda p: p.row)
    if len(rows) > MAX_LISTED:
        counts.append(Problem("more-problems", rows[0].file, 0, "",
                              f"... and {len(rows) - MAX_LISTED} more problem(s) in rows {rows[MAX_LISTED].row} "
                              f"to {rows[-1].row}", "fix the ones listed, then run again to see the rest"))
    return general + rows[:MAX_LISTED] + counts


# --- pooling ------------------------------------------------------------------------------------


def pool_arrays(yi: np.ndarray, vi: np.ndarray, sizes: np.ndarray, options: PoolOptions) -> dict:
    """The fit of one chunk as plain arrays (what a worker sends back)."""
    fit = pool_batch(yi, vi, sizes, options, weights=False)
    return {name: getattr(fit, name) for name in FIT_FIELDS}


def results_frame(ids: pd.Series, fit: dict, effect_options: EffectOptions,
                  pool_options: PoolOptions) -> pd.DataFrame:
    """One row per analysis: the label, the results contract, exp() for ratios, converged, iterations."""
    n = len(ids)
    data = {"analysis": ids, "k": fit["k"], "measure": np.full(n, effect_options.measure),
            "method": np.full(n, pool_options.method), "ci_method": np.full(n, pool_options.ci)}
    for name in CONTRACT_FIELDS:
        data.setdefault(name, fit.get(name))
    if effect_options.measure in RATIO_MEASURES:  # math.exp, as PoolResult.back (np.exp can differ by an ulp)
        for name in BACK_TRANSFORMED:
            data[f"{name}_exp"] = np.fromiter(map(math.exp, fit[name].tolist()), float, count=n)
    data["converged"] = fit["converged"]
    data["iterations"] = fit["iterations"]
    return pd.DataFrame(data, columns=list(output_columns(effect_options.measure)))


@dataclass(frozen=True)
class BatchSummary:
    """What a batch wrote: analyses pooled and how many of them did not converge."""

    analyses: int
    not_converged: int


def run_batch(source: LongFile, effect_options: EffectOptions, pool_options: PoolOptions,
              chunk_rows: int = DEFAULT_CHUNK_ROWS, client=None,
              progress: Callable[[int], None] | None = None) -> Iterator[pd.DataFrame]:
    """Result frames of every analysis of ``source``, one frame per chunk, in file order.

    ``client``: a dask.distributed Client to pool on (None: pool here, while a second thread reads
    and checks the next chunk). ``progress(position)`` is called after each chunk with the position
    reached (bytes for CSV, rows for Parquet; ``source.size`` is the end).
    """
    if chunk_rows < 1:
        raise BatchError(f"the chunk size must be at least 1 row; got {chunk_rows}")
    prepared = (chunk_effects(chunk, source.name, effect_options)
                for chunk in whole_analyses(source.chunks(chunk_rows), source.name))
    fits = _pool_local(prepared, pool_options) if client is None else _pool_dask(client, prepared, pool_options)
    empty = True
    for effects, fit in fits:
        empty = False
        yield results_frame(effects.ids, fit, effect_options, pool_options)
        if progress is not None:
            progress(effects.position)
    if empty:
        raise SheetError([Problem("empty-sheet", source.name, 0, "", "the file has a header but no rows",
                                  "add one row per study result")])


def _pool_local(prepared: Iterator[ChunkEffects], options: PoolOptions):
    with ThreadPoolExecutor(max_workers=1) as reader:
        upcoming = reader.submit(next, prepared, None)
        while (effects := upcoming.result()) is not None:
            upcoming = reader.submit(next, prepared, None)
            yield effects, pool_arrays(effects.yi, effects.vi, effects.sizes, options)


def _pool_dask(client, prepared: Iterator[ChunkEffects], options: PoolOptions):
    """Chunks pooled on the cluster, a few in flight per worker, results taken in order."""
    window = 2 * max(1, len(client.scheduler_info().get("workers", {})))
    pending: deque = deque()
    for effects in prepared:
        pending.append((effects, client.submit(pool_arrays, effects.yi, effects.vi, effects.sizes, options,
                                               pure=False)))
        if len(pending) >= window:
            done, future = pending.popleft()
            yield done, future.result()
    while pending:
        done, future = pending.popleft()
        yield done, future.result()


@contextlib.contextmanager
def dask_client(scheduler: str | None = None):
    """A dask.distributed Client: to ``scheduler`` if given, else to a LocalCluster of one process per core."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - a dependency of the package
        raise BatchError(f"the dask engine needs dask.distributed ({err})") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as err:
            raise BatchError(f"cannot reach the dask scheduler at {scheduler} ({err})") from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


# --- writing ------------------------------------------------------------------------------------


def write_results(frames: Iterable[pd.DataFrame], out: Path | None, stream=None) -> BatchSummary:
    """Write the result frames as CSV or Parquet (by ``out``'s extension), or CSV to the binary
    ``stream`` when ``out`` is None.

    A file is written under a temporary name and renamed when complete, so a failed batch leaves
    no partial output.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    analyses = not_converged = 0
    target = None if out is None else Path(out)
    parquet = target is not None and target.suffix.lower() in (".parquet", ".pq")
    temporary = None if target is None else target.with_name(f".{target.name}.partial")
    writer = None
    try:
        sink = stream if target is None else open(temporary, "wb")
        with contextlib.ExitStack() as stack:
            if target is not None:
                stack.enter_context(sink)
            for frame in frames:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    writer = (pq.ParquetWriter(sink, table.schema) if parquet
                              else pacsv.CSVWriter(sink, table.schema))
                    stack.callback(writer.close)
                writer.write_table(table)
                analyses += len(frame)
                not_converged += int((~frame["converged"]).sum())
        if target is not None:
            os.replace(temporary, target)
    finally:
        if temporary is not None and temporary.exists():
            temporary.unlink()
    return BatchSummary(analyses, not_converged)

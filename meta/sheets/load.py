"""Load a sheet and check its effect columns; every problem is collected, none stops the check.

A sheet is a CSV file, one row per study result. Cells are read as text first so that a word in a
numeric column can be reported with its row and column instead of turning into a silent NaN.
Row numbers in messages count data rows from 1 (the header is not a row), as a spreadsheet user
sees them after the header line.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from meta.errors import Problem
from meta.stats.effects import (
    DIFFERENCE_MEASURES,
    GROUP_MARKERS,
    GROUPS,
    MEASURES_OF_GROUP,
    REQUIRED,
    describe_requirements,
    odds_ratio_as_smd,
    requirement_names,
    row_groups,
)

NUMERIC_COLUMNS = tuple(sorted({c for cols in GROUPS.values() for c in cols}
                               | {"year", "n_total", "events_total", "dose_met_h_week",
                                  "follow_up_years"}))
COUNT_COLUMNS = ("events_treat", "n_treat", "events_ctrl", "n_ctrl", "nonevents_treat", "nonevents_ctrl", "n_total",
                 "events_total", "year")


def read_text(path: Path) -> tuple[str | None, list[Problem]]:
    """The text of a sheet file, or a problem saying why it cannot be read."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None, [Problem("missing-file", name, 0, "", "the file does not exist",
                              "check the path (relative to the current folder)")]
    except OSError as err:
        return None, [Problem("unreadable-file", name, 0, "", f"the file cannot be read ({err.strerror})",
                              "check that it is a readable file")]
    if raw.startswith(b"PK\x03\x04"):
        return None, [Problem("not-csv", name, 0, "", "this is a ZIP/XLSX workbook, not a CSV file",
                              "save the sheet as CSV (UTF-8) from the spreadsheet program")]
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as err:
        return None, [Problem("encoding", name, 0, "",
                              f"the file is not UTF-8 (byte {err.start} cannot be decoded)",
                              "save the sheet as CSV UTF-8")]


def load_sheet(path: Path) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Read a CSV sheet as text cells (no type guessing); empty cells become NaN."""
    text, problems = read_text(path)
    if text is None:
        return None, problems
    return parse_sheet(text, str(path))


def parse_sheet(text: str, name: str) -> tuple[pd.DataFrame | None, list[Problem]]:
    """A sheet from its text (``name`` is used in messages); see ``load_sheet``."""
    problems: list[Problem] = []
    if not text.strip():
        return None, [Problem("empty-sheet", name, 0, "", "the sheet is empty (no header, no rows)",
                              "add a header line and one row per study result")]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as err:
        return None, [Problem("malformed-csv", name, 0, "", f"the CSV cannot be parsed at line {reader.line_num} ({err})",
                              "check quoting: a field with commas or quotes must be in double quotes")]
    if not rows[0]:
        return None, [Problem("empty-header", name, 0, "", "the first line is blank; it should be the header",
                              "delete the blank line(s) above the header line")]
    header = [h.strip() for h in rows[0]]
    problems += _header_problems(header, name)
    # blank rows are left out but keep their numbers, so messages name the row a spreadsheet shows
    body = [(number, r) for number, r in enumerate(rows[1:], start=1) if any(cell.strip() for cell in r)]
    for number, r in body:
        if len(r) != len(header):
            problems.append(Problem("row-length", name, number, "",
                                    f"the row has {len(r)} fields but the header has {len(header)}",
                                    "quote fields that contain commas; remove stray separators"))
    if problems:
        return None, problems
    frame = pd.DataFrame([[c.strip() for c in r] for _, r in body], columns=header, dtype=object,
                         index=pd.Index([number for number, _ in body], dtype="int64"))
    frame = frame.replace("", np.nan)
    return frame, []


def _header_problems(header: list[str], name: str) -> list[Problem]:
    problems = []
    seen = set()
    for position, column in enumerate(header, start=1):
        if not column:
            problems.append(Problem("empty-header", name, 0, f"#{position}", "a column has no name",
                                    "name every column (see extraction/dictionary.csv)"))
        elif column in seen:
            problems.append(Problem("duplicate-header", name, 0, column, "the column appears twice",
                                    "keep one column of that name"))
        seen.add(column)
    return problems


def check_effect_table(frame: pd.DataFrame, name: str, measure: str,
                       unique_labels: bool = True) -> tuple[pd.DataFrame, list[Problem]]:
    """Type the numeric columns and check every row's effect group for ``measure``.

    The frame's index holds the sheet row numbers used in messages. Returns the typed table and
    the problems; the table is usable only when there are none.
    """
    problems: list[Problem] = []
    if frame is None or frame.empty:
        return frame, [Problem("empty-sheet", name, 0, "", "the sheet has a header but no rows",
                               "add one row per study result")]
    if "study" not in frame.columns:
        problems.append(Problem("missing-column", name, 0, "study",
                                "the column 'study' (the label of each row) is missing",
                                "add a 'study' column with one label per row"))
    typed = frame.copy()
    for column in NUMERIC_COLUMNS:
        if column in typed.columns:
            typed[column], column_problems = _to_numbers(frame[column], name, column)
            problems += column_problems
    groups = row_groups(typed)
    needed_columns: set[str] = set()
    for (number, row), present in zip(typed.iterrows(), groups):
        problems += _row_group_problems(row, present, number, name, measure, needed_columns)
    for column in sorted(needed_columns - set(frame.columns)):
        problems.append(Problem("missing-column", name, 0, column,
                                f"rows need the column '{column}', which is missing",
                                f"add a '{column}' column and fill it"))
    if "study" in frame.columns and unique_labels:
        problems += _duplicate_labels(frame, name)
    return typed, problems


def _to_numbers(values: pd.Series, name: str, column: str):
    numbers = pd.to_numeric(values, errors="coerce")
    problems = []
    for number, text, value in zip(values.index, values, numbers):
        if pd.notna(text) and pd.isna(value):
            problems.append(Problem("not-a-number", name, number, column,
                                    f"'{text}' is not a number",
                                    "write a plain number with a decimal point (e.g. 0.85), or leave it empty"))
        elif pd.notna(value) and not np.isfinite(value):
            problems.append(Problem("not-a-number", name, number, column, f"'{text}' is not finite",
                                    "write a finite number"))
        elif column in COUNT_COLUMNS and pd.notna(value) and value != int(value):
            problems.append(Problem("not-a-count", name, number, column,
                                    f"{text} is not a whole number", "counts are whole numbers of people"))
    return numbers, problems


def _row_group_problems(row, present, number, name, measure, needed_columns) -> list[Problem]:
    if not present:
        return [Problem("no-effect", name, number, "",
                        "no effect columns are filled",
                        "fill one group: yi+vi, estimate+ci_lower+ci_upper, events+n (or non-events), means+SDs+n, or d+n")]
    if len(present) > 1:
        columns = [c for g in present for c in GROUP_MARKERS[g] if c in row.index and pd.notna(row[c])]
        return [Problem("two-effect-groups", name, number, ",".join(columns),
                        f"the row fills more than one effect group ({' and '.join(present)})",
                        "keep one group of effect columns per row; move the other result to its own row")]
    group = present[0]
    problems = []
    if measure not in MEASURES_OF_GROUP[group] and not odds_ratio_as_smd(row, group, measure):
        also = " (or smd_basis = odds_ratio to re-express the odds ratio as an SMD)" \
            if group == "binary" and measure == "SMD" else ""
        problems.append(Problem("wrong-measure", name, number, "",
                                f"{group} columns cannot give {measure}",
                                f"use --measure {' or '.join(MEASURES_OF_GROUP[group])} for this sheet{also}"))
    if group == "precomputed":
        if not any(c in row.index and pd.notna(row[c]) for c in ("vi", "sei")):
            problems.append(Problem("missing-value", name, number, "vi", "yi has no vi or sei",
                                    "give the sampling variance vi or the standard error sei"))
            if "vi" not in row.index and "sei" not in row.index:
                needed_columns.add("vi")
    missing_columns = []
    for requirement in REQUIRED[group]:
        names = requirement_names(requirement)
        present_columns = [c for c in names if c in row.index]
        if not present_columns:
            missing_columns.append(names[0])
        elif all(pd.isna(row[c]) for c in present_columns):
            either = " or ".join(names)
            problems.append(Problem("missing-value", name, number, names[0], f"{either} is empty",
                                    f"fill {either} (a {group} row needs {describe_requirements(group)})"))
    needed_columns.update(missing_columns)
    if not problems and not missing_columns:
        problems += _range_problems(row, group, number, name, measure)
    return problems


TWO_PER_ARM = {  # groups whose arms need at least two people, and the fix the problem gives
    "continuous": "an SD needs at least 2 people per arm",
    "standardised": "a standardised difference needs at least 2 people per arm",
}


def _range_problems(row, group, number, name, measure) -> list[Problem]:
    def problem(column, message, fix):
        return Problem("out-of-range", name, number, column, message, fix)

    out = []
    if group == "binary":
        for arm in ("treat", "ctrl"):
            events, n, nonevents = row[f"events_{arm}"], row.get(f"n_{arm}"), row.get(f"nonevents_{arm}")
            if events < 0:
                out.append(problem(f"events_{arm}", f"events_{arm} ({events:g}) is negative", "events are counts >= 0"))
            if pd.notna(nonevents) and nonevents < 0:
                out.append(problem(f"nonevents_{arm}", f"nonevents_{arm} ({nonevents:g}) is negative",
                                   "non-events are counts >= 0"))
            if pd.notna(n) and n <= 0:
                out.append(problem(f"n_{arm}", f"n_{arm} ({n:g}) is not positive", "n counts people analysed (> 0)"))
            if pd.notna(n) and events > n:
                out.append(problem(f"events_{arm}", f"events_{arm} ({events:g}) is larger than n_{arm} ({n:g})",
                                   "check the arm: events cannot exceed the people in it"))
            elif pd.notna(n) and pd.notna(nonevents) and events + nonevents != n:
                out.append(problem(f"n_{arm},nonevents_{arm}",
                                   f"n_{arm} ({n:g}) is not events_{arm} + nonevents_{arm} ({events:g} + {nonevents:g})",
                                   f"give n_{arm} or nonevents_{arm}, not both, or correct the one that is wrong"))
            elif pd.isna(n) and events + nonevents <= 0:
                out.append(problem(f"nonevents_{arm}", "the arm has no people (events and non-events are 0)",
                                   "an arm counts people analysed (> 0)"))
    elif group in TWO_PER_ARM:
        for arm in ("treat", "ctrl"):
            if group == "continuous" and row[f"sd_{arm}"] <= 0:
                out.append(problem(f"sd_{arm}", f"sd_{arm} ({row[f'sd_{arm}']:g}) is not positive",
                                   "an SD is > 0; if the source gives an SE or CI, convert it and say so in notes"))
            if row[f"n_{arm}"] < 2:
                out.append(problem(f"n_{arm}", f"n_{arm} ({row[f'n_{arm}']:g}) is below 2", TWO_PER_ARM[group]))
    elif group == "interval":
        est, lo, hi = row["estimate"], row["ci_lower"], row["ci_upper"]
        for column, value in (("estimate", est), ("ci_lower", lo), ("ci_upper", hi)):
            if measure not in DIFFERENCE_MEASURES and value <= 0:
                out.append(problem(column, f"{column} ({value:g}) is not positive",
                                   "ratios and their limits are > 0 on the natural scale"))
            elif measure == "RD" and not -1 <= value <= 1:
                out.append(problem(column, f"{column} ({value:g}) is not a risk difference from -1 to 1",
                                   "write a risk difference as a proportion (e.g. -0.05 for 5 percentage points)"))
        if not out and not (lo <= est <= hi and lo < hi):
            out.append(problem("ci_lower,ci_upper", f"the CI {lo:g} to {hi:g} does not contain the estimate {est:g}",
                               "check that estimate, ci_lower and ci_upper are in the right columns"))
        level = row.get("ci_level")
        if pd.notna(level) and not 50 <= level < 100:
            out.append(problem("ci_level", f"ci_level ({level:g}) is not a percentage from 50 to 99.9",
                               "write the level in percent (e.g. 95)"))
    else:
        for column in ("vi", "sei"):
            if column in row.index and pd.notna(row[column]) and row[column] <= 0:
                out.append(problem(column, f"{column} ({row[column]:g}) is not positive",
                                   "a sampling variance or SE is > 0"))
    return out


def _duplicate_labels(frame: pd.DataFrame, name: str) -> list[Problem]:
    problems = []
    first_seen: dict[str, int] = {}
    for number, label in frame["study"].items():
        if pd.isna(label):
            problems.append(Problem("missing-value", name, number, "study", "the study label is empty",
                                    "give every row a label (e.g. 'Holmes 2005')"))
            continue
        if label in first_seen:
            problems.append(Problem("duplicate-label", name, number, "study",
                                    f"the label '{label}' is used again (first in row {first_seen[label]})",
                                    "make labels unique, e.g. add the cohort or a letter ('Smith 2010a')"))
        else:
            first_seen[label] = number
    return problems


def rows_matching(frame: pd.DataFrame, where) -> pd.Series:
    """True for the rows whose cells equal one of the wanted values in every column of ``where``
    (a mapping of column -> value or list of values; compared as text, as the sheet holds them)."""
    keep = pd.Series(True, index=frame.index)
    for column, wanted in where.items():
        values = wanted if isinstance(wanted, (list, tuple)) else [wanted]
        keep &= frame[column].isin([str(v) for v in values])
    return keep

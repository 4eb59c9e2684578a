"""``meta validate`` of dose-level sheets (a sheet with a ``referent`` column) and dose-response specs.

The checks of a result sheet that apply to a category row (dictionary columns and values, known
study_id, the effect numbers in the verbatim quote unless marked derived, a second reader), and the
dose checks of the engine per analysis (one referent per study, doses, counts).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from meta.errors import Problem, SheetError
from meta.sheets.dose_specs import DoseSpec
from meta.sheets.doses import dose_arrays
from meta.stats.doseresponse import check_dose_arrays

NOT_FOR_CATEGORIES = {"contrast"}  # a category row has no contrast of its own: the referent row is its contrast
DOSE_REQUIRED = ("study", "dose", "referent", "type", "outcome_key")
QUOTED = {"estimate": None, "ci_lower": None, "ci_upper": None, "cases": "cases_derived", "n": "n_derived",
          "person_years": "person_years_derived"}  # number -> the flag that marks it derived (not in the quote)
GROUP = "outcome_key"


def is_dose_sheet(frame: pd.DataFrame) -> bool:
    return "referent" in frame.columns


def check_dose_sheet(frame: pd.DataFrame, name: str, dictionary: pd.DataFrame, study_ids: set,
                     allowed_values, quote_numbers) -> tuple[list[Problem], list[Problem]]:
    """Every problem of a dose-level sheet, and the warnings (rows no second reader checked)."""
    problems, warnings = [], []
    for column in frame.columns:
        if column not in dictionary.index:
            problems.append(Problem("unknown-column", name, 0, column, f"the column '{column}' is not in the dictionary",
                                    "rename it to a dictionary column or add it to extraction/dictionary.csv"))
    required = [c for c, spec in dictionary.iterrows() if spec["required"] == "yes" and c not in NOT_FOR_CATEGORIES]
    for column in dict.fromkeys(required + list(DOSE_REQUIRED)):
        if column not in frame.columns:
            problems.append(Problem("missing-column", name, 0, column, f"the required column '{column}' is missing",
                                    f"add '{column}' (see extraction/dictionary.csv)"))
    if problems:
        return problems, warnings
    problems += allowed_values(frame.drop(columns=[c for c in NOT_FOR_CATEGORIES if c in frame.columns]), name,
                               dictionary.drop(index=[c for c in NOT_FOR_CATEGORIES if c in dictionary.index]))
    for number, row in zip(frame.index, frame.to_dict("records")):
        if pd.notna(row["study_id"]) and row["study_id"] not in study_ids:
            problems.append(Problem("unknown-study", name, number, "study_id",
                                    f"study_id '{row['study_id']}' is not in extraction/studies.csv",
                                    "add the publication to studies.csv or correct the id"))
        problems += _quote_problems(number, row, name, quote_numbers)
        if pd.isna(row.get("checked_by")):
            warnings.append(Problem("unchecked", name, number, "checked_by",
                                    "the row has not been checked by a second reader",
                                    "have someone who did not extract it check it against the source"))
    for _, part in frame.groupby(GROUP, sort=True):
        problems += dose_problems(part, name)
    return problems, warnings


def dose_problems(part: pd.DataFrame, name: str, covariance: str = "gl") -> list[Problem]:
    """The engine's checks of one analysis' rows (referents, doses, counts), as sheet problems."""
    try:
        arrays = dose_arrays(part, name)
    except SheetError as error:
        return error.problems
    found = check_dose_arrays(arrays.study, arrays.dose, arrays.logrr, arrays.se, arrays.cases, arrays.n,
                              arrays.type, covariance=covariance, model="linear", lenient=True)
    out = []
    for study, index, column, message, fix in found:
        if study is None:  # whole-analysis design problems belong to a spec's model, not to the sheet
            continue
        row = arrays.rows[index] if index >= 0 else next(r for r, s in zip(arrays.rows, arrays.study) if s == study)
        out.append(Problem("dose-response", name, row, arrays.columns.get(column, column),
                           f"study {study}: {message}", fix))
    return out


def _quote_problems(number, row, name, quote_numbers) -> list[Problem]:
    quoted = quote_numbers(row.get("quote"))
    out = []
    for column, derived_flag in QUOTED.items():
        value = row.get(column)
        if pd.isna(value) or (derived_flag and row.get(derived_flag) == "yes"):
            continue
        if row.get("referent") == "yes" and column == "estimate":
            continue  # the referent's RR of 1 is the design, not a printed number
        number_value = abs(float(value))
        if not any(abs(number_value - q) <= 1e-9 * max(1.0, number_value) for q in quoted):
            out.append(Problem("not-in-quote", name, number, column, f"{column} = {value} does not appear in the quote",
                               "copy the table row that holds the number into 'quote', verbatim, or mark it "
                               "derived with its rule"))
    return out


def check_dose_spec(spec: DoseSpec, sheets: dict, root: Path) -> list[Problem]:
    """A dose-response spec's sheet is a dose-level sheet, its filter columns exist and select rows."""
    where = str(spec.path.relative_to(Path(root).resolve())) if spec.path.is_absolute() else str(spec.path)
    frame = sheets.get(spec.sheet)
    if frame is None or not is_dose_sheet(frame):
        return [Problem("bad-spec", where, 0, "sheet", "the sheet is not a valid dose-level sheet",
                        "name a sheet with one row per exposure category and a referent column")]
    missing = [c for c in spec.filters if c not in frame.columns]
    if missing:
        return [Problem("bad-spec", where, 0, c, f"the sheet has no column '{c}'", "filter on a column of the sheet")
                for c in missing]
    if spec.select(frame).empty:
        return [Problem("bad-spec", where, 0, "filter", "the filters select no rows", "check the filter values")]
    return []

"""Checks of the shipped evidence: sheets against the data dictionary, provenance and specs.

``validate_project`` collects every problem of every sheet (file, row, column, fix): columns the
dictionary does not know, required columns, allowed values, dates, effect columns (through
``sheets.check_effect_table``), unknown ``study_id``, duplicate rows, one cohort twice in one
analysis, and that every effect number of a row appears in its verbatim ``quote``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from meta.errors import Problem, SpecError
from meta.sheets.dose_evidence import check_dose_sheet, check_dose_spec, is_dose_sheet
from meta.sheets.dose_specs import load_dose_specs
from meta.sheets.load import check_effect_table, load_sheet, parse_sheet, read_text
from meta.sheets.review import REVIEW_FILE, load_review
from meta.sheets.selection import mixed_smd_bases
from meta.sheets.specs import Spec, load_specs
from meta.stats.effects import (
    DIFFERENCE_MEASURES,
    GROUPS,
    ci_asymmetry_note,
    row_groups,
)

STUDY_COLUMNS = ("study_id", "first_author", "year", "title", "journal", "doi", "pmid", "design",
                 "population", "cohort", "source_url")
UNNAMED_COHORT = "not named in repository"  # the placeholder of an unidentified Garcia 2023 cohort
STUDY_DESIGNS = ("cohort", "pooled_cohorts", "case_cohort", "nested_case_control", "rct", "review")
EFFECT_NUMBER_COLUMNS = tuple(dict.fromkeys(
    [c for cols in GROUPS.values() for c in cols if c != "ci_level"] + ["n_total", "events_total"]))
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PLAIN_NUMBER = re.compile(r"\d*\.\d+|\d+")
GROUPED_NUMBER = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])")
EXPONENT_NUMBER = re.compile(r"\d*\.?\d+[eE][-+]?\d+")
ANALYSIS_KEY = ("outcome", "cancer_site", "sex", "cohort")


@dataclass(frozen=True)
class Report:
    """Everything ``meta validate`` found: problems (exit 1 when any) and warnings."""

    problems: list[Problem]
    warnings: list[Problem]
    sheets: int
    rows: int
    specs: int

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        """The ``meta validate --json`` object: counts, then every problem and warning with its place and fix."""
        return {"ok": self.ok, "sheets": self.sheets, "rows": self.rows, "specs": self.specs,
                "problems": [asdict(p) for p in self.problems], "warnings": [asdict(p) for p in self.warnings]}


def records(frame: pd.DataFrame):
    """(sheet row number, {column: value}) for every row; much faster than ``iterrows``."""
    return zip(frame.index, frame.to_dict("records"))


def sheet_paths(root: Path) -> list[Path]:
    """The result sheets: ``extraction/<outcome>/*.csv`` (folders starting with '_' are skipped), less
    links that lead outside the project (never read; ``validate_project`` reports them)."""
    inside = Path(root).resolve()
    return [p for p in _sheet_files(root) if p.resolve().is_relative_to(inside)]


def _sheet_files(root: Path) -> list[Path]:
    return sorted(p for p in (Path(root) / "extraction").glob("*/*.csv") if not p.parent.name.startswith("_"))


def load_dictionary(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "extraction" / "dictionary.csv", dtype=str, keep_default_na=False).set_index("column")


def validate_project(root: Path, overrides: dict[Path, str] | None = None) -> Report:
    """Check the dictionary, studies.csv, every result sheet and every spec under ``root``.

    ``overrides`` maps sheet paths to candidate texts checked instead of the files (``meta add``
    checks a sheet with its new row before writing it).
    """
    root = Path(root)
    if not (root / "extraction" / "dictionary.csv").is_file():
        return Report([Problem("not-a-project", str(root), 0, "", "there is no extraction/dictionary.csv here, "
                               "so this is not a meta project", "run meta in the project folder or give --root")],
                      [], 0, 0, 0)
    overrides = {Path(p).resolve(): text for p, text in (overrides or {}).items()}
    dictionary = load_dictionary(root)
    problems, warnings = [], []
    study_ids, study_problems = _check_studies(root)
    problems += study_problems
    for path in sorted(set(_sheet_files(root)) - set(sheet_paths(root))):
        problems.append(Problem("outside-project", str(path.relative_to(root)), 0, "",
                                "the sheet is a link to a file outside the project, so it is not read",
                                "copy the file into the project instead of linking to it"))
    rows = 0
    sheets = {}
    for path in sheet_paths(root):
        name = _rel(path, root)
        text, load_problems = ((overrides[path.resolve()], []) if path.resolve() in overrides
                               else read_text(path))
        frame = None
        if text is not None:
            frame, load_problems = parse_sheet(text, name)
        problems += load_problems
        if frame is None:
            continue
        sheets[path.resolve()] = frame
        rows += len(frame)
        found, cautions = (check_dose_sheet(frame, name, dictionary, study_ids, _allowed_values, quote_numbers)
                           if is_dose_sheet(frame) else check_evidence_sheet(frame, name, dictionary, study_ids))
        problems += found
        warnings += cautions
    specs = []
    try:
        specs = load_specs(root)
    except SpecError as err:
        problems.append(Problem("bad-spec", str(err).split(":")[0], 0, "", str(err), "correct the spec"))
    for spec in specs:
        problems += check_spec(spec, sheets, root)
    dose_specs = []
    try:
        dose_specs = load_dose_specs(root)
    except SpecError as err:
        problems.append(Problem("bad-spec", str(err).split(":")[0], 0, "", str(err), "correct the spec"))
    for dose_spec in dose_specs:
        problems += check_dose_spec(dose_spec, sheets, root)
    try:
        load_review(root)
    except SpecError as err:
        problems.append(Problem("bad-review-file", REVIEW_FILE, 0, "", str(err), "correct review.toml"))
    return Report(problems, warnings, len(sheets), rows, len(specs) + len(dose_specs))


def _check_studies(root: Path) -> tuple[set, list[Problem]]:
    path = root / "extraction" / "studies.csv"
    name = _rel(path, root)
    frame, problems = load_sheet(path)
    if frame is None:
        return set(), problems
    for column in STUDY_COLUMNS:
        if column not in frame.columns:
            problems.append(Problem("missing-column", name, 0, column, f"the column '{column}' is missing",
                                    f"add '{column}' (see extraction/README.md)"))
    if problems:
        return set(), problems
    seen = {}
    for number, row in records(frame):
        if row["study_id"] in seen:
            problems.append(Problem("duplicate-study", name, number, "study_id",
                                    f"study_id '{row['study_id']}' is used again (first in row {seen[row['study_id']]})",
                                    "give each publication one row"))
        seen.setdefault(row["study_id"], number)
        if row["design"] not in STUDY_DESIGNS:
            problems.append(Problem("not-allowed", name, number, "design", f"'{row['design']}' is not allowed",
                                    f"use one of {', '.join(STUDY_DESIGNS)}"))
        if pd.isna(row["doi"]) and pd.isna(row["pmid"]) and pd.isna(row["source_url"]):
            problems.append(Problem("no-identifier", name, number, "doi,pmid",
                                    "the publication has neither DOI, PMID nor source_url",
                                    "give the DOI or PMID as read in the source"))
    return set(seen), problems


def check_evidence_sheet(frame: pd.DataFrame, name: str, dictionary: pd.DataFrame,
                         study_ids: set) -> tuple[list[Problem], list[Problem]]:
    """Every problem of one result sheet, and the warnings (unchecked rows, asymmetric CIs)."""
    problems, warnings = [], []
    for column in frame.columns:
        if column not in dictionary.index:
            problems.append(Problem("unknown-column", name, 0, column, f"the column '{column}' is not in the dictionary",
                                    "rename it to a dictionary column or add it to extraction/dictionary.csv"))
    for column, spec in dictionary.iterrows():
        if spec["required"] == "yes" and column not in frame.columns:
            problems.append(Problem("missing-column", name, 0, column, f"the required column '{column}' is missing",
                                    f"add '{column}': {spec['description']}"))
    if problems:
        return problems, warnings
    problems += _allowed_values(frame, name, dictionary)
    for measure, part in frame.groupby("measure", dropna=True, sort=True):
        typed, found = check_effect_table(part, name, measure, unique_labels=False)
        problems += found
        if not found:
            problems += _quote_problems(typed, name)
            warnings += _asymmetry_warnings(typed, name, measure)
    for number, row in records(frame):
        if pd.notna(row["study_id"]) and row["study_id"] not in study_ids:
            problems.append(Problem("unknown-study", name, number, "study_id",
                                    f"study_id '{row['study_id']}' is not in extraction/studies.csv",
                                    "add the publication to studies.csv or correct the id"))
        if pd.isna(row.get("checked_by")):
            warnings.append(Problem("unchecked", name, number, "checked_by",
                                    "the row has not been checked by a second reader",
                                    "have someone who did not extract it check it against the source"))
        events, people = pd.to_numeric(row.get("events_total"), errors="coerce"), pd.to_numeric(row.get("n_total"), errors="coerce")
        if pd.notna(events) and pd.notna(people) and events > people:
            problems.append(Problem("out-of-range", name, number, "events_total",
                                    f"events_total ({row['events_total']}) is larger than n_total ({row['n_total']})",
                                    "check that the number is the cases, not person-years; leave it empty otherwise"))
        if str(row.get("cohort", "")).startswith(UNNAMED_COHORT):
            warnings.append(Problem("unnamed-cohort", name, number, "cohort",
                                    "the cohort is not named, so the check that a cohort enters an analysis "
                                    "once cannot be made for this row",
                                    "identify the publication and its cohort (extraction/MISSING.md lists the searches)"))
    problems += _duplicate_rows(frame, name)
    return problems, warnings


def _allowed_values(frame, name, dictionary) -> list[Problem]:
    problems = []
    for column, spec in dictionary.iterrows():
        if column not in frame.columns:
            continue
        values = frame[column]
        if spec["required"] == "yes":
            for number in values[values.isna()].index:
                problems.append(Problem("missing-value", name, number, column, f"{column} is empty",
                                        f"fill it: {spec['description']}"))
        allowed = spec["allowed"]
        if "|" in allowed and " " not in allowed:
            options = allowed.split("|")
            for number, value in values.dropna().items():
                if value not in options:
                    problems.append(Problem("not-allowed", name, number, column, f"'{value}' is not allowed",
                                            f"use one of {', '.join(options)}"))
        if spec["type"] == "date":
            for number, value in values.dropna().items():
                if not DATE.match(value):
                    problems.append(Problem("bad-date", name, number, column, f"'{value}' is not a date",
                                            "write the date as YYYY-MM-DD"))
    return problems


def quote_numbers(quote: str) -> list[float]:
    """Every number written in a quote, read plainly, with thousands separators ('1,234') and in
    exponent notation ('5.0E-4', as RevMan files write small numbers).

    A CSV row quoted verbatim ('2,16539,10.8') holds comma-separated fields, so the plain reading
    is always taken too; a number counts as quoted if any reading holds it.
    """
    text = quote or ""
    plain = [float(token) for token in PLAIN_NUMBER.findall(text)]
    grouped = [float(token.replace(",", "")) for token in GROUPED_NUMBER.findall(text)]
    exponent = [float(token) for token in EXPONENT_NUMBER.findall(text)]
    return plain + grouped + exponent


def _quote_problems(typed: pd.DataFrame, name: str) -> list[Problem]:
    problems = []
    for number, row in records(typed):
        quoted = quote_numbers(row.get("quote"))
        for column in EFFECT_NUMBER_COLUMNS:
            if column in row and pd.notna(row[column]):
                value = abs(float(row[column]))
                if not any(abs(value - q) <= 1e-9 * max(1.0, value) for q in quoted):
                    problems.append(Problem("not-in-quote", name, number, column,
                                            f"{column} = {row[column]:g} does not appear in the quote",
                                            "copy the sentence or table row that holds the number into 'quote', verbatim"))
    return problems


def _asymmetry_warnings(typed: pd.DataFrame, name: str, measure: str) -> list[Problem]:
    """Ratio CIs that are asymmetric on the log scale (a difference's CI is not checked)."""
    warnings = []
    if measure in DIFFERENCE_MEASURES:
        return warnings
    for (number, row), groups in zip(records(typed), row_groups(typed)):
        if groups == ["interval"]:
            note = ci_asymmetry_note(row["estimate"], row["ci_lower"], row["ci_upper"])
            if note:
                warnings.append(Problem("asymmetric-ci", name, number, "ci_lower,ci_upper", note,
                                        "compare estimate and limits with the source"))
    return warnings


def _duplicate_rows(frame, name) -> list[Problem]:
    problems = []
    effect_columns = [c for c in EFFECT_NUMBER_COLUMNS if c in frame.columns]
    key_columns = [c for c in ("study_id", "outcome", "cancer_site", "sex", "contrast") if c in frame.columns]
    key_columns += effect_columns
    seen = {}
    for number, row in records(frame):
        key = tuple(str(row[c]) for c in key_columns)
        if key in seen:
            problems.append(Problem("duplicate-row", name, number, "", f"the row repeats row {seen[key]}",
                                    "delete one of the two rows"))
        seen.setdefault(key, number)
    cohort_seen = {}
    analysis_key = [c for c in ANALYSIS_KEY if c in frame.columns]
    for number, row in (records(frame) if "cohort" in frame.columns else ()):
        key = tuple(str(row[c]) for c in analysis_key)
        if key in cohort_seen:
            where = " for ".join(str(row[c]) for c in ("outcome", "cancer_site") if c in frame.columns)
            problems.append(Problem("cohort-twice", name, number, "cohort",
                                    f"cohort '{row['cohort']}' already gives {where} "
                                    f"({row.get('sex', 'both')}) in row {cohort_seen[key]}",
                                    "keep one result per cohort per analysis (the most complete); note the other in MISSING.md"))
        cohort_seen.setdefault(key, number)
    return problems


def check_spec(spec: Spec, sheets: dict, root: Path) -> list[Problem]:
    """A spec's sheet exists, its filter columns exist, it selects rows, and each cohort once."""
    where = _rel(spec.path, root)
    frame = sheets.get(spec.sheet)
    if frame is None:
        return [Problem("bad-spec", where, 0, "sheet", f"the sheet {_rel(spec.sheet, root)} is not a valid result sheet",
                        "name a sheet under extraction/<outcome>/ that passes validation")]
    problems = []
    for column in list(spec.filters) + ([spec.subgroup] if spec.subgroup else []) + list(spec.moderators):
        if column not in frame.columns:
            problems.append(Problem("bad-spec", where, 0, column, f"the sheet has no column '{column}'",
                                    "filter on a column of the sheet"))
    if problems:
        return problems
    chosen = spec.select(frame)
    if chosen.empty:
        return [Problem("bad-spec", where, 0, "filter", "the filters select no rows", "check the filter values")]
    sheet = _rel(spec.sheet, root)
    if "cohort" in chosen.columns:
        problems += _cohorts_twice(chosen, sheet, spec.name)
    if spec.effect_options.measure == "SMD" and "smd_basis" in chosen.columns:
        problems += mixed_smd_bases(chosen, sheet, f"analysis {spec.name}")
    for number in chosen.index[chosen["study"].duplicated()]:
        problems.append(Problem("duplicate-label", sheet, number, "study",
                                f"label '{chosen.loc[number, 'study']}' appears twice in analysis {spec.name}",
                                "make the labels unique within the analysis"))
    return problems


def _cohorts_twice(chosen: pd.DataFrame, sheet: str, analysis: str) -> list[Problem]:
    """A cohort may enter an analysis once, or once per sex when it reports men and women apart."""
    problems = []
    sexes_seen: dict[str, list[str]] = {}
    for number, row in records(chosen):
        sex = row.get("sex") if "sex" in chosen.columns else "both"
        before = sexes_seen.setdefault(row["cohort"], [])
        if sex in before or (before and (sex == "both" or "both" in before)):
            problems.append(Problem("cohort-twice", sheet, number, "cohort",
                                    f"cohort '{row['cohort']}' is counted twice in analysis {analysis}",
                                    "narrow the spec's filter or keep one result per cohort (and sex)"))
        before.append(sex)
    return problems


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)

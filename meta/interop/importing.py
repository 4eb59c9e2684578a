"""What every import shares: a plan of new sheets, studies and specs, written all or nothing.

An importer (``revman``, ``spreadsheet``) turns a file into an ``ImportPlan``; ``apply_plan``
refuses to overwrite anything, appends the new publications to ``studies.csv`` (its existing
bytes kept), writes the sheets, specs and the mapping report, and checks the project with the
checks of ``meta validate``. A problem the import brought in undoes every file it wrote.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from meta.errors import MetaError, SheetError
from meta.sheets.add import append_line
from meta.sheets.evidence import load_dictionary, validate_project
from meta.sheets.load import load_sheet
from meta.storage import locked, write_if_changed

PLACEHOLDER = "not reported"


class ImportFileError(MetaError):
    """The file cannot be imported (nothing was written)."""


@dataclass(frozen=True)
class NewSheet:
    """A result sheet to write: its path inside the project and its rows (column -> text)."""

    path: str
    rows: tuple[dict, ...]


@dataclass(frozen=True)
class ImportPlan:
    """Everything one import writes, and the report that says which column became which."""

    sheets: tuple[NewSheet, ...]
    studies: tuple[dict, ...]
    specs: tuple[tuple[str, str], ...]
    report_path: str
    report: str


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote, its mapping report, and (RevMan) the checks against the file's own results."""

    written: tuple[str, ...]
    text: str
    checks: tuple = ()


def slug(text: str, limit: int = 40) -> str:
    """Lower-case words joined by '-' ('Tuberculosis (all cases)' -> 'tuberculosis-all-cases')."""
    out = ""
    for word in re.findall(r"[a-z0-9]+", str(text).lower()):
        if out and len(out) + 1 + len(word) > limit:
            break
        out = f"{out}-{word}" if out else word[:limit]
    return out or "x"


def review_dictionary(root: Path) -> pd.DataFrame:
    """The project's data dictionary; ImportFileError when ``root`` is not a review folder."""
    if not (Path(root) / "extraction" / "dictionary.csv").exists() or \
            not (Path(root) / "extraction" / "studies.csv").exists():
        raise ImportFileError(f"{root} is not a review folder (no extraction/dictionary.csv and studies.csv); "
                           "make one with `meta init DIR` first")
    return load_dictionary(Path(root))


def fill_required(rows: list[dict], dictionary: pd.DataFrame) -> list[str]:
    """Put PLACEHOLDER into required dictionary columns the source has no value for; returns them."""
    filled = []
    for column, spec in dictionary.iterrows():
        if spec["required"] == "yes" and any(not row.get(column) for row in rows):
            filled.append(column)
            for row in rows:
                row.setdefault(column, PLACEHOLDER)
                row[column] = row[column] or PLACEHOLDER
    return filled


def sheet_text(rows: tuple[dict, ...], dictionary: pd.DataFrame) -> str:
    """A CSV with the dictionary's columns that any row fills, in dictionary order."""
    unknown = sorted({c for row in rows for c, value in row.items() if value} - set(dictionary.index))
    if unknown:
        raise ImportFileError(f"column(s) {', '.join(unknown)} are not in extraction/dictionary.csv")
    columns = [c for c in dictionary.index if any(row.get(c) for row in rows)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return out.getvalue()


def known_studies(root: Path) -> dict[str, dict]:
    """studies.csv as study_id -> row (text cells)."""
    frame, problems = load_sheet(Path(root) / "extraction" / "studies.csv")
    if frame is None:
        raise SheetError(problems)
    return {row["study_id"]: {k: ("" if pd.isna(v) else v) for k, v in row.items()} for _, row in frame.iterrows()}


def study_key(wanted: str, first_author: str, year: str, known: dict[str, dict], taken: set[str]) -> tuple[str, bool]:
    """An id for a publication: ``wanted`` if free or already the same publication, else 'wanted-2'...

    Returns the id and whether studies.csv already holds it.
    """
    candidate, number = wanted, 1
    while True:
        row = known.get(candidate)
        if row is not None and row.get("first_author") == first_author and str(row.get("year")) == str(year):
            return candidate, True
        if row is None and candidate not in taken:
            return candidate, False
        number += 1
        candidate = f"{wanted}-{number}"


def apply_plan(root: Path, plan: ImportPlan) -> list[str]:
    """Write ``plan`` into the project at ``root``; undo everything on a new validation problem."""
    root = Path(root)
    dictionary = review_dictionary(root)
    targets = [s.path for s in plan.sheets] + [path for path, _ in plan.specs] + [plan.report_path]
    taken = [t for t in targets if (root / t).exists()]
    if taken:
        raise ImportFileError(f"already in the project: {', '.join(taken)}; remove them (or import under another "
                           "name) to import again")
    texts = {s.path: sheet_text(s.rows, dictionary) for s in plan.sheets}
    texts.update(dict(plan.specs))
    texts[plan.report_path] = plan.report
    studies_path = root / "extraction" / "studies.csv"
    with locked(studies_path):
        before = {str(p) for p in validate_project(root).problems}
        original = studies_path.read_bytes()
        created = {folder for target in texts for folder in (root / target).parents
                   if folder.is_relative_to(root) and not folder.exists()}
        try:
            if plan.studies:
                text = original.decode("utf-8-sig")
                header = next(csv.reader(io.StringIO(text)))
                for study in plan.studies:
                    text = append_line(text, header, study)
                write_if_changed(studies_path, text)
            for target, text in texts.items():
                write_if_changed(root / target, text)
            new = [p for p in validate_project(root).problems if str(p) not in before]
            if new:
                raise SheetError(new)
        except BaseException:
            for target in texts:
                (root / target).unlink(missing_ok=True)
            for folder in sorted(created, key=lambda p: len(p.parts), reverse=True):
                shutil.rmtree(folder, ignore_errors=True)
            write_if_changed(studies_path, original)
            raise
    return (["extraction/studies.csv"] if plan.studies else []) + list(texts)

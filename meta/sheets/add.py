"""``meta add``: append one study result to a sheet, checked first, written atomically.

The new row is checked with the same checks as ``meta validate`` (on the sheet with the row in
place, and against every analysis spec); a row that brings any new problem, or repeats a row, is
refused and the sheet stays byte-identical. The existing rows are kept byte for byte: the new row
is appended to the file's text in the header's column order, with the file's line ending. A lock
on the sheet makes concurrent adds land one after another, none lost.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from meta.errors import MetaError, SheetError
from meta.sheets.evidence import sheet_paths, validate_project
from meta.sheets.load import parse_sheet, read_text
from meta.storage import locked, write_if_changed


class AddError(MetaError):
    """The row cannot be added (the sheet is untouched)."""


def read_row_csv(path: Path) -> dict[str, str]:
    """The one data row of a CSV file with a header, as column -> text."""
    text, problems = read_text(Path(path))
    if text is None:
        raise SheetError(problems)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    if len(rows) != 1:
        raise AddError(f"{path}: expected a header and exactly one row, found {len(rows)} rows")
    return {k.strip(): (v or "").strip() for k, v in rows[0].items() if k is not None}


def add_row(root: Path, sheet: Path, values: dict[str, str]) -> int:
    """Append ``values`` as a new row of ``sheet``; returns its row number. Raises on any problem."""
    root = Path(root).resolve()
    sheet = Path(sheet).resolve()
    if sheet not in {p.resolve() for p in sheet_paths(root)}:
        raise AddError(f"{sheet} is not a result sheet of this project (extraction/<outcome>/<name>.csv)")
    with locked(sheet):
        original, problems = read_text(sheet)
        if original is None:
            raise SheetError(problems)
        frame, problems = parse_sheet(original, str(sheet))
        if frame is None:
            raise SheetError(problems)
        header = list(frame.columns)
        unknown = sorted(set(values) - set(header))
        if unknown:
            raise AddError(f"column(s) {', '.join(unknown)} are not in {sheet.name}; its columns are: {', '.join(header)}")
        candidate = append_line(original, header, values)
        number = len(list(csv.reader(io.StringIO(candidate, newline="")))) - 1  # blank rows count too
        before = {str(p) for p in validate_project(root).problems}
        after = validate_project(root, overrides={sheet: candidate}).problems
        new = [p for p in after if str(p) not in before]
        if new:
            raise SheetError(new)
        write_if_changed(sheet, candidate)
    return number


def append_line(text: str, header: list[str], values: dict[str, str]) -> str:
    """``text`` with one CSV line appended (existing bytes unchanged; same line ending)."""
    newline = "\r\n" if "\r\n" in text else "\n"
    out = io.StringIO()
    csv.writer(out, lineterminator=newline).writerow([values.get(c, "") for c in header])
    if text and not text.endswith(("\n", "\r")):
        text += newline
    return text + out.getvalue()

"""Which rows of a sheet one analysis uses: the rows a spec's filter keeps, or ``--where`` filters.

The same selection serves ``meta pool|bias|metareg --spec NAME`` and the library's ``spec=``/``where=``
arguments, so a documented analysis is re-run exactly as ``meta run`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from meta.errors import MetaError, Problem, SheetError, SpecError
from meta.sheets.load import load_sheet, rows_matching
from meta.sheets.names import with_metafor_names
from meta.sheets.specs import Spec, load_spec


@dataclass(frozen=True)
class Selection:
    """The rows chosen for one analysis (text cells; index = the sheet's row numbers) and where from."""

    frame: pd.DataFrame
    name: str
    spec: Spec | None = None


def parse_where(items: Sequence[str]) -> dict[str, list[str]]:
    """``["sex=female", "site=colon", "site=rectum"]`` -> ``{"sex": ["female"], "site": ["colon", "rectum"]}``;
    a column given twice keeps rows matching any of its values."""
    where: dict[str, list[str]] = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            raise MetaError(f"--where takes COLUMN=VALUE; got {item!r}")
        where.setdefault(column.strip(), []).append(value.strip())
    return where


def select_rows(frame: pd.DataFrame, name: str, where: Mapping[str, object]) -> pd.DataFrame:
    """The rows whose cells equal one of the wanted values in every named column; raises SheetError
    when a column is missing or nothing is left."""
    problems = [Problem("missing-column", name, 0, column, f"the sheet has no column '{column}' to filter on",
                        f"filter on one of: {', '.join(frame.columns)}")
                for column in where if column not in frame.columns]
    if problems:
        raise SheetError(problems)
    keep = rows_matching(frame, where)
    if not keep.any():
        wanted_text = "; ".join(f"{c} = {', '.join(map(str, v if isinstance(v, (list, tuple)) else [v]))}"
                                for c, v in where.items())
        raise SheetError([Problem("nothing-selected", name, 0, next(iter(where)), f"no row has {wanted_text}",
                                  "check the values (they must match the cells exactly)")])
    return frame[keep]


def sheet_selection(path: Path | str, where: Mapping[str, object] | None = None,
                    metafor_names: bool = True) -> Selection:
    """A sheet's rows, filtered by ``where`` when given; with ``metafor_names`` (a sheet of study results,
    not of dose levels) metafor's column names are read as the sheet's."""
    frame, problems = load_sheet(Path(path))
    if problems:
        raise SheetError(problems)
    if metafor_names:
        frame, _ = with_metafor_names(frame)
    name = str(path)
    return Selection(select_rows(frame, name, where) if where else frame, name)


def spec_selection(root: Path | str, spec_name: str, where: Mapping[str, object] | None = None) -> Selection:
    """The rows of ``analyses/<spec_name>.toml``'s sheet that its filter keeps (then ``where``)."""
    root = Path(root)
    path = root / "analyses" / f"{spec_name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in (root / "analyses").glob("*.toml"))
        raise SpecError(f"no analysis spec {path}; known: {', '.join(known) or 'none'}")
    spec = load_spec(path, root)
    selection = sheet_selection(spec.sheet, dict(spec.filters) | dict(where or {}))
    return Selection(selection.frame, selection.name, spec)


def mixed_smd_bases(chosen: pd.DataFrame, sheet: str, analysis: str) -> list[Problem]:
    """SMDs of change scores may not be pooled with SMDs of follow-up values (Cochrane Handbook
    10.5.2: the SDs of changes and of final values differ, so the two SMDs are not the same scale)."""
    if "smd_basis" not in chosen.columns:
        return []
    basis = chosen["smd_basis"]
    if not ((basis == "change").any() and basis.isin(["final", "adjusted"]).any()):
        return []
    return [Problem("smd-change-with-final", sheet, number, "smd_basis",
                    f"{analysis} pools this change-score SMD with SMDs of follow-up values",
                    "select one basis (a spec filter or --where smd_basis=final), or pool change scores apart"
                    " (--allow-mixed pools them anyway)")
            for number in chosen.index[basis == "change"]]

"""What the library accepts as data: a sheet's path or a pandas DataFrame in the sheet vocabulary.

A DataFrame is turned into the text cells a sheet file would hold, so it passes exactly the checks
(and gets exactly the messages) a CSV gets; its rows are numbered 1, 2, ... as a spreadsheet shows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Union

import pandas as pd

from meta.errors import MetaError
from meta.sheets.names import with_metafor_names
from meta.sheets.selection import Selection, select_rows, sheet_selection

Data = Union[str, Path, pd.DataFrame]
FRAME_NAME = "<DataFrame>"


def selection_of(data: Data, where: Mapping[str, object] | None = None, metafor_names: bool = True) -> Selection:
    """The rows to analyse from a path or a DataFrame, filtered by ``where`` (column -> value(s)); metafor's
    column names are read as the sheet's unless ``metafor_names=False`` (dose-level sheets)."""
    if isinstance(data, pd.DataFrame):
        frame = as_sheet_cells(data)
        if metafor_names:
            frame, _ = with_metafor_names(frame)
        return Selection(select_rows(frame, FRAME_NAME, where) if where else frame, FRAME_NAME)
    if isinstance(data, (str, Path)):
        return sheet_selection(Path(data), where, metafor_names)
    raise MetaError(f"data must be a pandas DataFrame or the path of a CSV sheet; got {type(data).__name__}")


def as_sheet_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """The DataFrame as a sheet's text cells: numbers written exactly (``repr``), whole floats without
    '.0' (counts stay counts), missing values as NaN; index = row numbers 1..n."""
    cells = pd.DataFrame({str(column): [_cell(value) for value in frame[column]] for column in frame.columns},
                         dtype=object)
    cells.index = pd.RangeIndex(1, len(frame) + 1)
    return cells


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return math.nan
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    text = str(value).strip()
    return text if text else math.nan

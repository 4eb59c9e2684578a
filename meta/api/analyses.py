"""``meta.pool``, ``meta.bias``, ``meta.metareg`` and ``meta.read_sheet``: one analysis from Python,
with the same checks and messages as the command line (which calls these functions)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from meta.api.data import Data, selection_of
from meta.api.results import PoolResult
from meta.errors import OptionError, SheetError
from meta.sheets.analyses import bias_frame, metareg_frame, pool_frame
from meta.sheets.load import load_sheet
from meta.stats.bias import BiasReport
from meta.stats.metareg import MetaRegression
from meta.stats.options import EffectOptions, PoolOptions

OPTION_NAMES = ("zero_cells", "md_variance", "i2", "where", "allow_mixed")


def pool(data: Data, *, measure: str, method: str = "REML", ci: str = "knha", level: float = 0.95,
         **options) -> PoolResult:
    """Pool the studies of ``data`` (a DataFrame or a CSV path in the sheet vocabulary, any effect group).

    ``measure``: RR, OR, RD, HR, SMD, MD or GEN. ``method``: tau^2 estimator (FE, DL, REML, ML, PM, SJ,
    HE, EB, HS). ``ci``: ``"knha"`` (Knapp-Hartung) or ``"z"``. ``level``: 0.95 (or 95).
    Options: ``where={"column": value or [values]}`` keeps matching rows; ``zero_cells`` ("keep" adds 0.5
    to tables with a zero, metafor; "drop" leaves out double-zero RR/OR studies); ``md_variance``
    ("unequal" or "pooled"); ``i2`` ("typical", metafor's, or "mean"); ``allow_mixed=True`` pools
    change-score with follow-up SMDs (refused otherwise, Cochrane Handbook 10.5.2).
    Raises ``meta.SheetError`` naming the row, column and fix of every problem.

    >>> result = meta.pool("reference/datasets/bcg_rr.csv", measure="RR")   # doctest: +SKIP
    """
    effect_options, where, allow_mixed, i2 = _effect_options(measure, options)
    pool_options = PoolOptions(method=method, ci=ci, level=percent(level), i2_definition=i2)
    chosen = selection_of(data, where)
    return PoolResult.from_core(pool_frame(chosen.frame, chosen.name, effect_options, pool_options, allow_mixed))


def bias(data: Data, *, measure: str, method: str = "REML", ci: str = "knha", level: float = 0.95,
         **options) -> BiasReport:
    """Small-study tests (Egger, Begg), trim-and-fill and leave-one-out of ``data``, as metafor; the
    arguments as ``meta.pool``. ``to_dict()`` is the ``meta bias --json`` object."""
    effect_options, where, allow_mixed, i2 = _effect_options(measure, options)
    pool_options = PoolOptions(method=method, ci=ci, level=percent(level), i2_definition=i2)
    chosen = selection_of(data, where)
    return bias_frame(chosen.frame, chosen.name, effect_options, pool_options, allow_mixed)


def metareg(data: Data, *, measure: str, mods: Sequence[str] | str | None = None, factors: Sequence[str] = (),
            method: str = "REML", ci: str = "knha", level: float = 0.95, **options) -> MetaRegression:
    """Meta-regression of ``data``'s effects on the moderator columns ``mods`` (metafor ``rma(mods = )``;
    ``moderators=`` is the same argument); ``factors`` are treated as categorical. ``ci``: ``"knha"`` (t and
    F tests) or ``"z"``. Other arguments as ``meta.pool``; ``to_dict()`` is the ``meta metareg --json`` object."""
    mods = options.pop("moderators", None) if mods is None else mods
    if not mods:
        raise OptionError("name the moderator column(s): mods=['dose']")
    if isinstance(mods, str):
        mods = [mods]
    effect_options, where, allow_mixed, _ = _effect_options(measure, options)
    chosen = selection_of(data, where)
    return metareg_frame(chosen.frame, chosen.name, effect_options, tuple(mods), tuple(factors), method, ci,
                         percent(level), allow_mixed)


def read_sheet(path: str | Path) -> pd.DataFrame:
    """A sheet as text cells (empty cells NaN; index = the row numbers a spreadsheet shows); raises
    ``meta.SheetError`` if the file cannot be read as a CSV with a header."""
    frame, problems = load_sheet(Path(path))
    if problems:
        raise SheetError(problems)
    return frame


def percent(level: float) -> float:
    """0.95 -> 95.0; 95 -> 95.0 (both spellings are accepted)."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 100:
        raise OptionError(f"level must be a probability (e.g. 0.95) or a percentage (e.g. 95); got {level!r}")
    return float(level) * 100 if level < 1 else float(level)


def _effect_options(measure: str, options: dict) -> tuple[EffectOptions, Mapping | None, bool, str]:
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise OptionError(f"unknown option(s) {', '.join(unknown)}; allowed: {', '.join(OPTION_NAMES)}")
    effect_options = EffectOptions(measure, md_variance=options.get("md_variance", "unequal"),
                                   zero_cells=options.get("zero_cells", "keep"))
    return effect_options, options.get("where"), bool(options.get("allow_mixed", False)), options.get("i2", "typical")

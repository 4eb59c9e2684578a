"""One analysis of a sheet end to end: checked rows -> effect sizes -> pooled result, bias tests or
meta-regression. The numerical work is in ``meta.stats``; this layer reads and checks the rows.

Each function takes the rows as ``load_sheet`` returns them (text cells, index = sheet row numbers);
``*_sheet`` variants read a file first. A change-score SMD is not pooled with follow-up SMDs unless
``allow_mixed`` (Cochrane Handbook 10.5.2), as ``meta validate`` refuses it in a spec.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from meta.errors import Problem, SheetError
from meta.sheets.load import check_effect_table
from meta.sheets.selection import mixed_smd_bases, sheet_selection
from meta.stats.bias import BiasReport, bias_report
from meta.stats.effects import EffectError, EffectSizes, arm_size, compute_effects, row_groups
from meta.stats.metareg import MetaRegression, fit_metareg
from meta.stats.options import EffectOptions, PoolOptions
from meta.stats.pooling import pool_batch
from meta.stats.results import PoolResult, result_from_fit
from meta.stats.smallstudy import TwoByTwo


def effect_sizes(frame: pd.DataFrame, name: str, effect_options: EffectOptions,
                 allow_mixed: bool = False) -> EffectSizes:
    """Check the rows and compute yi, vi; raises SheetError with every problem found."""
    typed, problems = check_effect_table(frame, name, effect_options.measure)
    if effect_options.measure == "SMD" and not allow_mixed:
        problems += mixed_smd_bases(frame, name, "the analysis")
    if problems:
        raise SheetError(problems)
    try:
        effects = compute_effects(typed, effect_options)
    except EffectError as error:  # about rows of the sheet: say which file
        raise EffectError(f"{name}: {error}") from None
    if effects.k == 0:
        raise SheetError([Problem("nothing-to-pool", name, 0, "",
                                  "every study was left out (no events in either arm)",
                                  "use --zero-cells keep, or choose RD")])
    return effects


def pool_frame(frame: pd.DataFrame, name: str, effect_options: EffectOptions, pool_options: PoolOptions,
               allow_mixed: bool = False) -> PoolResult:
    """Pool the rows of an already loaded sheet."""
    return pool_effects(effect_sizes(frame, name, effect_options, allow_mixed), pool_options)


def pool_effects(effects: EffectSizes, pool_options: PoolOptions) -> PoolResult:
    """Pool effect sizes already computed (one analysis: a batch of one)."""
    warnings = ()
    if effects.k == 1:
        warnings = ("k = 1: the pooled result is the single study itself; there is no "
                    "heterogeneity to estimate" + (" and the interval is z-based (Knapp-Hartung needs k >= 2)"
                                                   if pool_options.ci == "knha" else ""),)
    fit = pool_batch(effects.yi, effects.vi, np.array([effects.k]), pool_options)
    return result_from_fit(fit, 0, effects, pool_options, warnings)


def pool_sheet(path: Path, effect_options: EffectOptions, pool_options: PoolOptions,
               where: Mapping[str, object] | None = None, allow_mixed: bool = False) -> PoolResult:
    """Pool the rows of the sheet at ``path`` (those ``where`` keeps, if given)."""
    chosen = sheet_selection(path, where)
    return pool_frame(chosen.frame, chosen.name, effect_options, pool_options, allow_mixed)


def bias_frame(frame: pd.DataFrame, name: str, effect_options: EffectOptions, pool_options: PoolOptions,
               allow_mixed: bool = False) -> BiasReport:
    """Pool the rows as ``pool_frame`` does, then run every small-study test and sensitivity analysis.

    Peters' and Harbord's tests need the 2x2 tables: they are passed on when every pooled row is a
    binary row of an RR, OR or RD analysis."""
    effects = effect_sizes(frame, name, effect_options, allow_mixed)
    result = pool_effects(effects, pool_options)
    typed, _ = check_effect_table(frame, name, effect_options.measure)
    return bias_report(result, pool_options, two_by_two(typed, effect_options, effects))


def two_by_two(typed: pd.DataFrame, effect_options: EffectOptions, effects: EffectSizes) -> TwoByTwo | None:
    """The 2x2 tables of the pooled rows (``typed``: checked rows), in pooling order, as the effect sizes used
    them (0.5 added to every cell of a table with a zero cell); None unless every pooled row is binary."""
    if effect_options.measure not in ("RR", "OR", "RD"):
        return None
    rows = typed.loc[list(effects.rows)]
    if any(groups != ["binary"] for groups in row_groups(rows)):
        return None
    tables = []
    for _, row in rows.iterrows():
        a, c = float(row["events_treat"]), float(row["events_ctrl"])
        cells = (a, arm_size(row, "treat") - a, c, arm_size(row, "ctrl") - c)
        if min(cells) == 0:
            cells = tuple(x + effect_options.add for x in cells)
        tables.append(cells)
    a, b, c, d = np.array(tables, dtype=float).T
    return TwoByTwo(a, b, c, d)


def metareg_frame(frame: pd.DataFrame, name: str, effect_options: EffectOptions, moderators: tuple[str, ...],
                  categorical: tuple[str, ...] = (), method: str = "REML", test: str = "knha",
                  level: float = 95.0, allow_mixed: bool = False) -> MetaRegression:
    """Regress the rows' effect sizes on the ``moderators`` columns: numeric where their values are
    numbers, categorical where they are all text or named in ``categorical``. Raises SheetError listing
    every problem (a missing column, a column mixing numbers and text) or ModelError."""
    table, problems = _moderator_table(frame, name, moderators, categorical)
    try:
        effects = effect_sizes(frame, name, effect_options, allow_mixed)
    except SheetError as error:
        problems = error.problems + problems
    if problems:
        raise SheetError(problems)
    table = table.loc[list(effects.rows)]
    return fit_metareg(effects.yi, effects.vi, table, method, test, level, categorical=tuple(categorical),
                       studies=effects.labels)


def _moderator_table(frame, name, moderators, categorical) -> tuple[pd.DataFrame, list[Problem]]:
    problems = []
    table = pd.DataFrame(index=frame.index)
    for column in moderators:
        if column not in frame.columns:
            problems.append(Problem("missing-column", name, 0, column, f"the moderator column '{column}' is missing",
                                    "name a column of the sheet with --mod"))
            continue
        values = frame[column].str.strip().replace("", math.nan)
        numbers = pd.to_numeric(values, errors="coerce")
        text = numbers.isna() & values.notna()
        if text[values.notna()].all() or (column in categorical and text.any()):  # text: categorical
            table[column] = values
            continue
        for number in frame.index[text]:
            problems.append(Problem("not-a-number", name, int(number), column, f"'{values[number]}' is not a number",
                                    f"write a number, or pass --factor {column} to treat it as categorical"))
        table[column] = numbers
    return table, problems

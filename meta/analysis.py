"""One analysis end to end: checked sheet rows -> effect sizes -> pooled result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .effects import compute_effects
from .errors import Problem, SheetError
from .options import EffectOptions, PoolOptions
from .pooling import pool_batch
from .results import PoolResult, result_from_fit
from .sheets import check_effect_table, load_sheet


def pool_sheet(path: Path, effect_options: EffectOptions, pool_options: PoolOptions) -> PoolResult:
    """Pool every row of the sheet at ``path``; raises SheetError with every problem found."""
    frame, problems = load_sheet(Path(path))
    if problems:
        raise SheetError(problems)
    return pool_frame(frame, str(path), effect_options, pool_options)


def pool_frame(frame: pd.DataFrame, name: str, effect_options: EffectOptions,
               pool_options: PoolOptions) -> PoolResult:
    """Pool the rows of an already loaded sheet (text cells, as ``load_sheet`` returns them)."""
    typed, problems = check_effect_table(frame, name, effect_options.measure)
    if problems:
        raise SheetError(problems)
    effects = compute_effects(typed, effect_options)
    if effects.k == 0:
        raise SheetError([Problem("nothing-to-pool", name, 0, "",
                                  "every study was left out (no events in either arm)",
                                  "use --zero-cells keep, or choose RD")])
    warnings = ()
    if effects.k == 1:
        warnings = ("k = 1: the pooled result is the single study itself; there is no "
                    "heterogeneity to estimate" + (" and the interval is z-based (Knapp-Hartung needs k >= 2)"
                                                   if pool_options.ci == "knha" else ""),)
    fit = pool_batch(effects.yi, effects.vi, np.array([effects.k]), pool_options)
    return result_from_fit(fit, 0, effects, pool_options, warnings)

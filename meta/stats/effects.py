"""Raw numbers of a sheet -> effect sizes ``yi`` and sampling variances ``vi`` on the analysis scale.

Each row fills exactly one group of effect columns (``docs/ARCHITECTURE.md``); the formulas are
metafor's ``escalc`` (Viechtbauer 2010, J Stat Softw 36(3)) with its defaults:

- binary -> log RR, log OR, RD from each arm's events with its n or its non-events (escalc's
  ``ai, n1i`` or ``ai, bi``: a source printing cases and non-cases needs no total of ours); 0.5
  added to every cell of a table with a zero cell, double-zero tables kept (``add = 1/2,
  to = "only0", drop00 = FALSE``); ``zero_cells="drop"`` leaves out double-zero tables for RR and
  OR as Cochrane's RevMan does.
- continuous -> SMD (Hedges' g with the exact correction c(m) = Gamma(m/2) / (sqrt(m/2)
  Gamma((m-1)/2)), m = n1 + n2 - 2; Hedges 1981; large-sample variance, vtype "LS") and MD
  (variance sd1^2/n1 + sd2^2/n2, or from the pooled SD with ``md_variance="pooled"``, vtype "HO").
- interval (an estimate with its CI) -> for HR, RR, OR the log estimate, SE = (log upper - log lower) /
  (2 z_{(1+level)/2}) (Altman & Bland 2011, BMJ 343:d2090), with a warning where the CI is clearly
  asymmetric on the log scale; for MD and RD the estimate, SE = (upper - lower) / (2 z) (Cochrane
  Handbook 6.5.2.3), e.g. a trial printing only its between-group difference of changes.
- standardised -> an SMD printed by the source (Cohen's d, uncorrected) with the arms' n: Hedges'
  correction and the large-sample variance as above (escalc's ``di`` argument).
- binary rows marked ``smd_basis = odds_ratio`` in an SMD analysis -> the log odds ratio re-expressed
  as an SMD, log OR x sqrt(3)/pi with variance x 3/pi^2 (Chinn 2000, Stat Med 19:3127; Cochrane
  Handbook 10.6; escalc's ``"OR2DL"``), so a trial reporting only how many people crossed a cut-off
  can join trials reporting means.
- precomputed -> ``yi`` with ``vi`` or ``sei``.

Logarithms of one row are taken with ``math.log`` (the C library's), not ``numpy.log``: numpy's
AVX-512 log differs from it in the last bit on some CPUs, which changed published files' hashes
and plots between machines; the C library gives the same bits on every x86-64 machine.
"""

from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from meta.errors import MetaError
from meta.stats.distributions import norm_isf
from meta.stats.options import EffectOptions

GROUPS = {
    "precomputed": ("yi", "vi", "sei"),
    "interval": ("estimate", "ci_lower", "ci_upper", "ci_level"),
    "binary": ("events_treat", "n_treat", "events_ctrl", "n_ctrl", "nonevents_treat", "nonevents_ctrl"),
    "continuous": ("mean_treat", "sd_treat", "n_treat", "mean_ctrl", "sd_ctrl", "n_ctrl"),
    "standardised": ("d", "n_treat", "n_ctrl"),
}
# Columns whose presence says which group a row fills (n_treat/n_ctrl are shared, so they say nothing).
GROUP_MARKERS = {
    "precomputed": ("yi", "vi", "sei"),
    "interval": ("estimate", "ci_lower", "ci_upper"),
    "binary": ("events_treat", "events_ctrl"),
    "continuous": ("mean_treat", "sd_treat", "mean_ctrl", "sd_ctrl"),
    "standardised": ("d",),
}
# A tuple inside a requirement lists alternatives: one of them must be filled.
REQUIRED = {
    "precomputed": ("yi",),
    "interval": ("estimate", "ci_lower", "ci_upper"),
    "binary": ("events_treat", ("n_treat", "nonevents_treat"), "events_ctrl", ("n_ctrl", "nonevents_ctrl")),
    "continuous": ("mean_treat", "sd_treat", "n_treat", "mean_ctrl", "sd_ctrl", "n_ctrl"),
    "standardised": ("d", "n_treat", "n_ctrl"),
}
MEASURES_OF_GROUP = {
    "precomputed": ("GEN", "RR", "OR", "RD", "HR", "SMD", "MD"),
    "interval": ("HR", "RR", "OR", "MD", "RD"),
    "binary": ("RR", "OR", "RD"),
    "continuous": ("SMD", "MD"),
    "standardised": ("SMD",),
}
DIFFERENCE_MEASURES = ("MD", "RD")  # an interval row of these is on the natural scale, of the others on the log scale
ASYMMETRY_WARN = 0.10  # share of the log-CI width that the arms may differ by, beyond rounding


class EffectError(MetaError):
    """Rows whose group cannot give the requested measure."""


@dataclass(frozen=True)
class EffectSizes:
    """Effect sizes of the studies of one analysis, in sheet order, and what was done to them."""

    measure: str
    labels: tuple[str, ...]
    years: tuple
    yi: np.ndarray
    vi: np.ndarray
    rows: tuple[int, ...]
    corrected: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def k(self) -> int:
        return len(self.labels)


def row_groups(table: pd.DataFrame) -> list[list[str]]:
    """For each row, the effect groups it has any value of (exactly one is valid)."""
    filled = {g: table[[c for c in cols if c in table.columns]].notna().to_numpy().any(axis=1)
              for g, cols in GROUP_MARKERS.items()}
    return [[g for g in GROUP_MARKERS if filled[g][i]] for i in range(len(table))]


@np.errstate(all="ignore")  # numbers too extreme give inf or 0 instead of an exception; refused below
def compute_effects(table: pd.DataFrame, options: EffectOptions) -> EffectSizes:
    """Effect sizes for every row of a checked sheet (numeric columns already numbers).

    Raises EffectError naming the rows whose effect size or variance is not a finite positive number.
    """
    measure = options.measure
    labels, years, yis, vis, rows = [], [], [], [], []
    corrected, dropped, warnings = [], [], []
    groups = row_groups(table)
    for (number, row), present in zip(table.iterrows(), groups):
        label = str(row["study"])
        group = present[0]
        as_smd = odds_ratio_as_smd(row, group, measure)
        if measure not in MEASURES_OF_GROUP[group] and not as_smd:
            raise EffectError(
                f"row {number} ({label}) has {group} columns, which cannot give {measure}; "
                f"{group} rows give {', '.join(MEASURES_OF_GROUP[group])}")
        if group == "precomputed":
            yi, vi = _precomputed(row)
        elif group == "interval" and measure in DIFFERENCE_MEASURES:
            yi, vi = _difference(row)
        elif group == "interval":
            yi, vi, note = _ratio(row)
            if note:
                warnings.append(f"{label}: {note}")
        elif group == "binary":
            cells = _cells(row)
            if options.zero_cells == "drop" and (measure in ("RR", "OR") or as_smd) and _double_zero(cells):
                dropped.append(label)
                continue
            if min(cells) == 0:
                cells = tuple(c + options.add for c in cells)
                corrected.append(label)
            if as_smd:
                yi, vi = smd_from_log_odds_ratio(*_binary(cells, "OR"))
                warnings.append(f"{label}: odds ratio re-expressed as an SMD (log OR x sqrt(3)/pi; Chinn 2000)")
            else:
                yi, vi = _binary(cells, measure)
        elif group == "standardised":
            yi, vi = smd_from_d(*(np.float64(row[c]) for c in GROUPS["standardised"]))
            yi, vi = float(yi), float(vi)
        else:
            yi, vi = _continuous(row, measure, options.md_variance)
        labels.append(label)
        years.append(row.get("year"))
        yis.append(yi)
        vis.append(vi)
        rows.append(int(number))
    extreme = [f"row {r} ({label})" for r, label, y, v in zip(rows, labels, yis, vis)
               if not (np.isfinite(y) and np.isfinite(v) and v > 0)]
    if extreme:
        raise EffectError(f"{'; '.join(extreme)}: the {measure} or its variance is not a finite positive number "
                          "(the values are too extreme to compute it); check these rows")
    return EffectSizes(measure, tuple(labels), tuple(years), np.array(yis, dtype=float),
                       np.array(vis, dtype=float), tuple(rows), tuple(corrected),
                       tuple(dropped), tuple(warnings))


def _precomputed(row) -> tuple[float, float]:
    yi = float(row["yi"])
    if "vi" in row.index and pd.notna(row["vi"]):
        return yi, float(row["vi"])
    return yi, np.float64(row["sei"]) ** 2


def _z_of_level(row) -> float:
    level = float(row["ci_level"]) if "ci_level" in row.index and pd.notna(row["ci_level"]) else 95.0
    return norm_isf((1 - level / 100) / 2)


def _ratio(row) -> tuple[float, float, str]:
    est, lo, hi = float(row["estimate"]), float(row["ci_lower"]), float(row["ci_upper"])
    sei = (math.log(hi) - math.log(lo)) / (2 * _z_of_level(row))
    return math.log(est), float(sei**2), ci_asymmetry_note(est, lo, hi)


def _difference(row) -> tuple[float, float]:
    """A difference (MD, RD) and its variance from its CI on the natural scale (Cochrane Handbook 6.5.2.3)."""
    est, lo, hi = float(row["estimate"]), float(row["ci_lower"]), float(row["ci_upper"])
    return est, float(((hi - lo) / (2 * _z_of_level(row))) ** 2)


def ci_asymmetry_note(est: float, lo: float, hi: float) -> str:
    """A warning when the log CI is asymmetric about the log estimate beyond what rounding explains."""
    lower_arm = math.log(est) - math.log(lo)
    upper_arm = math.log(hi) - math.log(lo) - lower_arm
    width = lower_arm + upper_arm
    if width <= 0:
        return ""
    slack = sum(_rounding_half_unit(x) / x for x in (lo, hi)) + 2 * _rounding_half_unit(est) / est
    excess = abs(upper_arm - lower_arm) - slack
    if excess / width > ASYMMETRY_WARN:
        return (f"CI {lo:g}-{hi:g} is asymmetric about {est:g} on the log scale "
                f"(arms {lower_arm:.3f} and {upper_arm:.3f}); check the extraction")
    return ""


def _rounding_half_unit(x: float) -> float:
    text = repr(float(x))
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    return 0.5 * 10.0 ** (-decimals)


def _cells(row) -> tuple[float, float, float, float]:
    a, c = np.float64(row["events_treat"]), np.float64(row["events_ctrl"])
    return a, _nonevents(row, "treat", a), c, _nonevents(row, "ctrl", c)


def _nonevents(row, arm: str, events: float) -> float:
    given = row.get(f"nonevents_{arm}")
    return np.float64(given) if pd.notna(given) else np.float64(row[f"n_{arm}"]) - events


def arm_size(row, arm: str) -> float:
    """People in one arm of a binary or continuous row: its n, or events + non-events (NaN if neither)."""
    n = row.get(f"n_{arm}")
    if pd.notna(n):
        return float(n)
    events, nonevents = row.get(f"events_{arm}"), row.get(f"nonevents_{arm}")
    return float(events) + float(nonevents) if pd.notna(events) and pd.notna(nonevents) else float("nan")


def requirement_names(requirement) -> tuple[str, ...]:
    """The columns one entry of ``REQUIRED`` accepts (a single name or a tuple of alternatives)."""
    return requirement if isinstance(requirement, tuple) else (requirement,)


def describe_requirements(group: str) -> str:
    """'events_treat, n_treat or nonevents_treat, ...': what a row of ``group`` must fill."""
    return ", ".join(" or ".join(requirement_names(r)) for r in REQUIRED[group])


def _double_zero(cells) -> bool:
    a, b, c, d = cells
    return (a == 0 and c == 0) or (b == 0 and d == 0)


def _binary(cells, measure: str) -> tuple[float, float]:
    a, b, c, d = cells
    n1, n2 = a + b, c + d
    p1, p2 = a / n1, c / n2
    if measure == "RR":
        return math.log(p1) - math.log(p2), 1 / a - 1 / n1 + 1 / c - 1 / n2
    if measure == "OR":
        return math.log(p1 / (1 - p1)) - math.log(p2 / (1 - p2)), 1 / a + 1 / b + 1 / c + 1 / d
    return p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2


def odds_ratio_as_smd(row, group: str, measure: str) -> bool:
    """Whether a row is a binary result that an SMD analysis re-expresses (``smd_basis = odds_ratio``)."""
    return group == "binary" and measure == "SMD" and row.get("smd_basis") == "odds_ratio"


def smd_from_log_odds_ratio(yi, vi):
    """An SMD and its variance from a log odds ratio: x sqrt(3)/pi and x 3/pi^2 (Chinn 2000;
    metafor's ``escalc(measure="OR2DL")``)."""
    return yi * np.sqrt(3) / np.pi, vi * 3 / np.pi**2


def hedges_correction(m):
    """Exact small-sample correction c(m) of Hedges (1981), as metafor's ``.cmicalc`` (scalar or array)."""
    return np.exp(special.gammaln(m / 2) - np.log(np.sqrt(m / 2)) - special.gammaln((m - 1) / 2))


def smd_from_d(d, n1, n2):
    """Hedges' g and its large-sample variance from an uncorrected SMD ``d`` (scalar or array).

    metafor's ``escalc(measure="SMD", di=, n1i=, n2i=)``: g = c(n1 + n2 - 2) d,
    v = 1/n1 + 1/n2 + g^2 / (2 (n1 + n2)).
    """
    g = hedges_correction(n1 + n2 - 2) * d
    return g, 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))


def _continuous(row, measure: str, md_variance: str) -> tuple[float, float]:
    m1, s1, n1 = (np.float64(row[c]) for c in ("mean_treat", "sd_treat", "n_treat"))
    m2, s2, n2 = (np.float64(row[c]) for c in ("mean_ctrl", "sd_ctrl", "n_ctrl"))
    m = n1 + n2 - 2
    sp = np.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / m)
    if measure == "MD":
        if md_variance == "pooled":
            return m1 - m2, float(sp**2 * (1 / n1 + 1 / n2))
        return m1 - m2, s1**2 / n1 + s2**2 / n2
    g, v = smd_from_d((m1 - m2) / sp, n1, n2)
    return float(g), float(v)

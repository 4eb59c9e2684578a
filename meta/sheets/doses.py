"""Dose-level sheets: one row per exposure category of a study, for dose-response meta-analysis.

Columns (docs/ARCHITECTURE.md): ``study``, ``dose``, the category's relative risk as ``estimate`` +
``ci_lower`` + ``ci_upper`` (natural scale) or ``yi`` + ``sei`` (log scale), ``cases``, ``n`` (persons;
person-time for incidence-rate data) and ``type`` (cc, ir, ci). The referent row of each study has
ratio 1 (``yi`` 0) and no CI or SE (or ``referent = yes``). dosresmeta's and Garcia et al. 2023's
column names are read too (``id``, ``logrr``, ``se``, ``lb``/``ub``, ``peryears``, ``personyrs``...),
so their example files load as they are; a sheet without a study column is one study. Every problem is
reported with row, column and fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from meta.errors import Problem, SheetError
from meta.stats.distributions import norm_isf
from meta.stats.doseresponse import DoseResponseError, check_dose_arrays, fit_doseresponse
from meta.stats.pseudocounts import TYPES
from meta.stats.results import json_value
from meta.stats.splines import person_time_knots

SYNONYMS = {  # our column -> the names other tools give it, in order of preference
    "study": ("study", "id", "author", "first_author"),
    "yi": ("yi", "logrr"),
    "sei": ("sei", "se"),
    "estimate": ("estimate", "rr", "adjrr", "hr", "or"),
    "ci_lower": ("ci_lower", "lci_effect", "lb", "lower"),
    "ci_upper": ("ci_upper", "uci_effect", "ub", "upper"),
    "cases": ("cases", "case", "events"),
    "n": ("n", "totalpersons"),
    "person_time": ("person_years", "peryears", "personyrs", "person_time"),
    "measure": ("measure", "effect_measure"),
    "dose": ("dose",),
    "type": ("type",),
    "referent": ("referent",),
}


@dataclass(frozen=True)
class DoseArrays:
    """The arrays the engine takes (one entry per category; referent rows have se NaN, logrr 0)."""

    study: np.ndarray
    dose: np.ndarray
    logrr: np.ndarray
    se: np.ndarray
    cases: np.ndarray
    n: np.ndarray
    type: np.ndarray
    rows: tuple[int, ...]  # the sheet row of each entry
    columns: dict[str, str]  # our name -> the sheet's column read
    person_time: np.ndarray  # for knots placed by person-time (NaN where the sheet has none)


def column_map(frame: pd.DataFrame, n_column: str | None = None) -> dict[str, str]:
    """Which sheet column gives each of our quantities (case-insensitive synonyms)."""
    lower = {c.lower(): c for c in frame.columns}
    mapping = {ours: next(lower[name] for name in names if name in lower)
               for ours, names in SYNONYMS.items() if any(name in lower for name in names)}
    if n_column:
        mapping["n"] = n_column
    return mapping


def dose_arrays(frame: pd.DataFrame, name: str, *, type_: str | None = None,
                n_column: str | None = None) -> DoseArrays:
    """Read a dose-level table (text cells as ``load_sheet`` gives them) into engine arrays; raises
    SheetError with every problem (missing columns, text where a number belongs, a CI without its
    estimate, an unknown type)."""
    columns = column_map(frame, n_column)
    problems = _missing_columns(frame, name, columns, type_, n_column)
    if problems:
        raise SheetError(problems)
    numbers = {ours: _numbers(frame, name, column, problems) for ours, column in columns.items()
               if ours not in ("study", "type", "referent", "measure")}
    types = (np.full(len(frame), type_, dtype=object) if type_
             else frame[columns["type"]].fillna("").str.strip().to_numpy(dtype=object))
    for number, value in zip(frame.index, types):
        if value not in TYPES:
            problems.append(Problem("bad-value", name, int(number), columns.get("type", "type"),
                                    f"type {value!r} is not one of {', '.join(TYPES)}",
                                    "cc (case-control), ir (incidence rate: n is person-time) or ci "
                                    "(cumulative incidence: n is persons); or give --type"))
    logrr, se = _log_scale(frame, name, numbers, columns, problems)
    if problems:
        raise SheetError(problems)
    nan = np.full(len(frame), math.nan)
    single = np.full(len(frame), Path(name).stem, dtype=object)  # no study column: one study, the whole sheet
    study = frame[columns["study"]].astype(str).str.strip().to_numpy(dtype=object) if "study" in columns else single
    return DoseArrays(study, numbers["dose"],
                      logrr, se, numbers.get("cases", nan), _n(frame, columns, numbers, n_column), types,
                      tuple(int(i) for i in frame.index), columns, numbers.get("person_time", nan))


def _n(frame, columns, numbers, n_column) -> np.ndarray:
    """n per row: the column named, else (Garcia et al. 2023's convention) person-time for hazard-ratio rows
    where the sheet has it and persons otherwise; a sheet with person-time only (incidence rates) uses it."""
    nan = np.full(len(frame), math.nan)
    if n_column:
        return numbers["n"]
    persons, person_time = numbers.get("n"), numbers.get("person_time")
    if persons is None:
        return nan if person_time is None else person_time
    if person_time is None or "measure" not in columns:
        return persons
    hazard = frame[columns["measure"]].fillna("").str.strip().str.upper().eq("HR").to_numpy()
    return np.where(hazard, person_time, persons)


def _missing_columns(frame, name, columns, type_, n_column) -> list[Problem]:
    problems = []
    for ours, what in {"dose": "the category's dose"}.items():
        if ours not in columns:
            problems.append(Problem("missing-column", name, 0, ours, f"the sheet has no {ours} column ({what})",
                                    f"add a column '{ours}'"))
    if "yi" not in columns and not {"estimate", "ci_lower", "ci_upper"} <= set(columns):
        problems.append(Problem("missing-column", name, 0, "estimate",
                                "the sheet has neither yi + sei (log RR and its SE) nor estimate + ci_lower + ci_upper",
                                "give each category its relative risk with its CI, or its log RR with its SE"))
    if "type" not in columns and not type_:
        problems.append(Problem("missing-column", name, 0, "type", "the sheet has no type column",
                                "add a column type (cc, ir or ci) or give the type with --type"))
    if n_column and n_column not in frame.columns:
        problems.append(Problem("missing-column", name, 0, n_column, f"the sheet has no column '{n_column}'",
                                f"name the column that gives n; the sheet has: {', '.join(frame.columns)}"))
    return problems


def _numbers(frame, name, column, problems) -> np.ndarray:
    values = frame[column].fillna("").astype(str).str.strip().replace({"NA": "", "NaN": "", "nan": ""})
    parsed = pd.to_numeric(values.replace("", np.nan), errors="coerce")
    for number in frame.index[parsed.isna() & (values != "")]:
        problems.append(Problem("not-a-number", name, int(number), column, f"'{values[number]}' is not a number",
                                "write a plain number with a decimal point (e.g. 0.85), or leave the cell empty"))
    return parsed.to_numpy(dtype=float)


def _log_scale(frame, name, numbers, columns, problems) -> tuple[np.ndarray, np.ndarray]:
    """log RR and its SE per row; referent rows (no CI or SE, or referent = yes) get SE NaN."""
    if "yi" in numbers:
        logrr = numbers["yi"].copy()
        se = numbers.get("sei", np.full(len(frame), math.nan)).copy()
    else:
        logrr = np.full(len(frame), math.nan)
        se = np.full(len(frame), math.nan)
    if {"estimate", "ci_lower", "ci_upper"} <= set(numbers):
        est, lo, hi = numbers["estimate"], numbers["ci_lower"], numbers["ci_upper"]
        z = float(norm_isf(0.025))
        with np.errstate(divide="ignore", invalid="ignore"):
            fill = ~np.isfinite(logrr) & (est > 0)
            logrr[fill] = np.log(est[fill])
            from_ci = ~np.isfinite(se) & (lo > 0) & (hi > lo)
            se[from_ci] = (np.log(hi[from_ci]) - np.log(lo[from_ci])) / (2 * z)
        for number, e, l, h in zip(frame.index, est, lo, hi):
            if np.isfinite(l) and np.isfinite(h) and l < h and not l <= e <= h:
                problems.append(Problem("out-of-range", name, int(number), columns["estimate"],
                                        f"the CI {l:g} to {h:g} does not contain the estimate {e:g}",
                                        "check the estimate and its limits"))
            if np.isfinite(l) and np.isfinite(h) and l > h:
                problems.append(Problem("out-of-range", name, int(number), columns["ci_lower"],
                                        f"the lower limit {l:g} is above the upper limit {h:g}",
                                        "swap the limits"))
    se[se <= 0] = math.nan  # a referent printed with SE 0 or a CI of 1 to 1 (dosresmeta's examples)
    if "referent" in columns:
        flagged = frame[columns["referent"]].fillna("").str.strip().str.lower().isin(["yes", "true", "1"]).to_numpy()
        se[flagged] = math.nan
    for number, y in zip(frame.index, logrr):
        if not np.isfinite(y):
            problems.append(Problem("missing-value", name, int(number), columns.get("yi", columns.get("estimate", "")),
                                    "the category has no relative risk", "give its estimate (1 for the referent)"))
    return logrr, se


@dataclass(frozen=True)
class DoseOptions:
    """How to fit a dose-response analysis (``meta doseresponse``; a spec's ``[doseresponse]`` table).

    ``knots``: None (10/50/90% quantiles of the doses), a tuple of doses, or ``"person-time"`` (Garcia et
    al. 2023's rule: the last knot where the top 25% of person-time begins). ``n_column``: the column that
    gives n (default: see ``_n``). ``round_person_time``: round person-time to whole units before the model
    (Garcia's code does). ``optimum``: ``"converged"`` or ``"mvmeta"`` (stop where R's mvmeta stops).
    """

    model: str = "rcs"
    knots: object = None
    covariance: str = "gl"
    fallback: str | None = None
    method: str = "REML"
    type: str | None = None
    n_column: str | None = None
    round_person_time: bool = False
    optimum: str = "converged"
    predict: tuple[float, ...] = ()
    reference: float = 0.0


@dataclass(frozen=True)
class DoseFit:
    """A fitted analysis with the sheet rows it used, its options and what the reader should know."""

    fit: object  # meta.stats.doseresponse.DoseResponseFit
    arrays: DoseArrays
    warnings: tuple[str, ...]
    options: DoseOptions

    def curve(self, doses, reference: float | None = None) -> pd.DataFrame:
        """RR (and 95% CI) at ``doses`` relative to ``reference`` (default: the options' reference dose)."""
        reference = self.options.reference if reference is None else reference
        p = self.fit.predict(np.asarray(doses, dtype=float), reference)
        return pd.DataFrame({"dose": p.dose, "estimate": p.estimate, "ci_lower": p.ci_lower,
                             "ci_upper": p.ci_upper, "log_estimate": p.log_estimate, "se": p.se})

    def to_dict(self) -> dict:
        """The ``meta doseresponse --json`` contract (docs/ARCHITECTURE.md) plus the reference dose and
        the warnings; NaN and infinities as null."""
        return finite({**self.fit.to_dict(), "reference": self.options.reference, "warnings": list(self.warnings)})


def finite(value):
    """The JSON-safe copy of a nested result: NaN and infinities become None, numpy numbers Python's."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return json_value(value)


def fit_dose_frame(frame: pd.DataFrame, name: str, options: DoseOptions) -> DoseFit:
    """Check a dose-level table and fit it; raises SheetError with every problem (row, column, fix)."""
    arrays = dose_arrays(frame, name, type_=options.type, n_column=options.n_column)
    n = np.round(arrays.n) if options.round_person_time and "person_time" in arrays.columns else arrays.n
    knots = options.knots
    if knots == "person-time":
        if not np.all(np.isfinite(arrays.person_time)):
            raise SheetError([Problem("missing-value", name, 0, "person_years",
                                      "knots by person-time need every category's person-time",
                                      "give person_years for every row, or give the knots")])
        person_time = np.round(arrays.person_time) if options.round_person_time else arrays.person_time
        knots = tuple(person_time_knots(arrays.dose, person_time))
    problems, warnings = _repeats(arrays, name)
    found = check_dose_arrays(arrays.study, arrays.dose, arrays.logrr, arrays.se, arrays.cases, n, arrays.type,
                              covariance=options.covariance, model=options.model,
                              knots=None if knots is None else np.asarray(knots, dtype=float), lenient=True)
    problems += [_problem(name, arrays, *item) for item in found]
    if problems:
        raise SheetError(problems)
    try:
        fit = fit_doseresponse(arrays.study, arrays.dose, arrays.logrr, arrays.se, arrays.cases, n, arrays.type,
                               model=options.model, knots=knots, covariance=options.covariance,
                               method=options.method, fallback=options.fallback,
                               predict=list(options.predict) or None, reference=options.reference,
                               lenient=True, optimum=options.optimum)
    except DoseResponseError as error:
        study_rows = [r for r, s in zip(arrays.rows, arrays.study) if s == error.study]
        raise SheetError([Problem("dose-response", name, study_rows[0] if study_rows else 0,
                                  _sheet_column(arrays, error.column), str(error).split(" Fix: ")[0],
                                  (error.fix or "check the study's rows, or use fallback gl")
                                  .replace("fallback='gl'", "--fallback gl (fallback='gl' in Python)"))]) from None
    if fit.covariance_used != options.covariance:
        warnings.append(f"the {options.covariance} covariance could not be computed for every study; the whole "
                        f"analysis was fitted with {fit.covariance_used} (fallback)")
    return DoseFit(fit, arrays, tuple(warnings), options)


def _repeats(arrays: DoseArrays, name: str) -> tuple[list[Problem], list[str]]:
    """A row repeated within a study (same dose and same relative risk) is an error; two categories at one
    dose with different results, or a referent whose RR is not 1, are fitted as dosresmeta fits them, with
    a warning."""
    problems, warnings, seen = [], [], {}
    for i, (study, dose, y) in enumerate(zip(arrays.study, arrays.dose, arrays.logrr)):
        key = (study, dose)
        if key in seen and arrays.logrr[seen[key]] == y:
            problems.append(Problem("duplicate-dose", name, arrays.rows[i], arrays.columns["dose"],
                                    f"study {study} has dose {dose:g} with the same result twice "
                                    f"(first in row {arrays.rows[seen[key]]})",
                                    "delete the repeated row, or correct its dose"))
        elif key in seen:
            warnings.append(f"study {study}: two categories at dose {dose:g} (rows {arrays.rows[seen[key]]} and "
                            f"{arrays.rows[i]}); both are fitted, as dosresmeta does")
        seen.setdefault(key, i)
        if not np.isfinite(arrays.se[i]) and y != 0:
            warnings.append(f"study {study}: its referent (row {arrays.rows[i]}, no CI) has RR {math.exp(y):.3g}, "
                            "not 1; as in dosresmeta the other categories are taken relative to it")
    return problems, warnings


def _sheet_column(arrays: DoseArrays, column: str) -> str:
    engine = {"se": "sei", "logrr": "yi"}
    ours = engine.get(column, column)
    if ours in ("sei", "yi") and ours not in arrays.columns:
        ours = "ci_lower" if ours == "sei" else "estimate"
    return arrays.columns.get(ours, column or "")


def _problem(name, arrays, study, index, column, message, fix) -> Problem:
    row = arrays.rows[index] if index >= 0 else next((r for r, s in zip(arrays.rows, arrays.study) if s == study), 0)
    where = f"study {study}: " if study is not None and index < 0 else ""
    return Problem("dose-response", name, row if study is not None else 0, _sheet_column(arrays, column),
                   where + message, fix)

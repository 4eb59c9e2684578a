"""``meta run`` for dose-response specs: fit each curve whose inputs changed, draw it, and keep the record
the living summary, history, CHANGES and the site read (the relative risk at the guideline dose is the
curve's headline: ``RR at 8.75 mMET-h/week``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from meta._version import __version__
from meta.publish.living import OUTPUT, selected_rows
from meta.sheets.dose_specs import DoseSpec
from meta.sheets.doses import DoseFit, finite, fit_dose_frame

CURVE_FORMATS = ("png", "svg")
HEADLINE_DOSE = 8.75  # mMET-h/week: 150 min/week of moderate activity (Garcia et al. 2023)


@dataclass
class DoseRun:
    """One dose-response spec in one run: its rows, hash and (when re-computed) its fit."""

    spec: DoseSpec
    rows: pd.DataFrame
    input_hash: str
    cached: dict | None = None
    result: DoseFit | None = None
    sensitivity: DoseFit | None = None

    @property
    def changed(self) -> bool:
        return self.cached is None


def prepare(root: Path, spec: DoseSpec, studies: dict, force: bool, sheets: dict) -> DoseRun:
    chosen, input_hash = selected_rows(spec, studies, sheets)
    cached = None if force else _cached(root, spec.name, input_hash)
    return DoseRun(spec, chosen, input_hash, cached)


def _cached(root: Path, name: str, input_hash: str) -> dict | None:
    folder = root / OUTPUT / name
    try:
        record = json.loads((folder / "analysis.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if record.get("input_hash") != input_hash or record.get("version") != __version__ \
            or not all((folder / f"curve.{fmt}").exists() for fmt in CURVE_FORMATS):
        return None
    return record


def fit(run: DoseRun, root: Path) -> None:
    name = str(run.spec.sheet.relative_to(Path(root).resolve()))
    run.result = fit_dose_frame(run.rows, name, run.spec.options)
    if run.spec.sensitivity:
        run.sensitivity = fit_dose_frame(run.spec.sensitivity_rows(run.rows), name, run.spec.options)


def render(run: DoseRun) -> dict[Path, bytes]:
    """The curve as PNG and SVG (runs in a render process)."""
    from meta.publish.curve_plot import curve_plot
    from meta.publish.plots import figure_bytes

    figure = curve_plot(run.result, run.spec.title, run.spec.dose_label, run.spec.marks)
    return {OUTPUT / run.spec.name / f"curve.{fmt}": content
            for fmt, content in figure_bytes(figure, formats=CURVE_FORMATS).items()}


def record(run: DoseRun, studies: dict) -> dict:
    """What the summary, history, CHANGES and the site need about one curve (kept in analysis.json)."""
    spec, result = run.spec, run.result
    fit_ = result.fit
    headline = result.curve([HEADLINE_DOSE]).iloc[0]
    rows = run.rows
    study_rows = []
    for label, part in rows.groupby("study", sort=False):
        meta_ = studies.get(part["study_id"].iloc[0], {}) if "study_id" in part else {}
        doses = pd.to_numeric(part["dose"], errors="coerce")
        study_rows.append({"study": label, "year": _text(part.get("year", pd.Series([""])).iloc[0]),
                           "cohort": _text(part.get("cohort", pd.Series([""])).iloc[0]),
                           "categories": int(len(part)), "dose_min": float(doses.min()),
                           "dose_max": float(doses.max()), "doi": meta_.get("doi", ""), "pmid": meta_.get("pmid", ""),
                           "source_url": meta_.get("source_url", ""),
                           "source_location": _text(part.get("source_location", pd.Series([""])).iloc[0])})
    cases = pd.to_numeric(rows.get("cases", pd.Series(dtype=float)), errors="coerce")
    return finite({
        "analysis": spec.name, "kind": "dose-response", "title": spec.title, "outcome": spec.outcome,
        "population": spec.population, "comparison": spec.comparison, "rationale": spec.rationale,
        "sheet": str(spec.sheet.name), "input_hash": run.input_hash,
        "spec_hash": hashlib.sha256(spec.path.read_bytes()).hexdigest(), "version": __version__,
        "measure": f"RR at {HEADLINE_DOSE:g} mMET-h/week", "headline_dose": HEADLINE_DOSE,
        "result": {"k": fit_.k, "method": fit_.method, "ci_method": "z", "model": fit_.model,
                   "estimate_exp": float(headline.estimate), "ci_lower_exp": float(headline.ci_lower),
                   "ci_upper_exp": float(headline.ci_upper), "pi_lower_exp": None, "pi_upper_exp": None,
                   "tau2": None, "i2": fit_.i2, "q": fit_.q, "q_df": fit_.q_df, "q_p": fit_.q_p},
        "curve": result.to_dict(), "dose_label": spec.dose_label,
        "predictions": result.curve(spec.options.predict or [HEADLINE_DOSE]).to_dict("records"),
        "participants": [None, 0], "events": [int(cases.sum()) if cases.notna().any() else None,
                                              int(rows.loc[cases.notna(), "study"].nunique())],
        "baseline_risk": None, "baseline_risk_source": "",
        "certainty": {"label": "not rated", "start": "", "reasons": [],
                      "notes": ["the GRADE-style rule is for pooled comparisons; a dose-response curve is not rated"]},
        "tsa": None, "tsa_note": "not applicable (cohort data, dose-response)",
        "studies": study_rows, "warnings": list(result.warnings),
        "sensitivity": None if run.sensitivity is None else {
            "label": spec.sensitivity["label"], "excluded": list(spec.sensitivity["exclude_study_id"]),
            "k": run.sensitivity.fit.k,
            "predictions": run.sensitivity.curve(spec.options.predict or [HEADLINE_DOSE]).to_dict("records")},
    })


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)

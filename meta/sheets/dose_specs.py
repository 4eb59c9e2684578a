"""Dose-response analysis specs: ``analyses/<name>.toml`` with a ``[doseresponse]`` table.

The spec names a dose-level sheet, filters its rows, says how to fit the curve (the keys of
``DoseOptions``) and how to describe it. Unknown keys and values outside the vocabularies are refused
with a message naming the spec and the key, as for pooled-analysis specs.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from meta.errors import SpecError
from meta.sheets.doses import DoseOptions
from meta.sheets.load import rows_matching
from meta.sheets.specs import has_table, inside_project
from meta.stats.doseresponse import METHODS, MODELS
from meta.stats.pseudocounts import COVARIANCES, TYPES

TEXT_KEYS = ("title", "outcome", "population", "comparison", "sheet", "rationale")
SPEC_KEYS = set(TEXT_KEYS) | {"filter", "doseresponse"}
DOSE_KEYS = {"model", "knots", "covariance", "fallback", "method", "type", "n_column", "round_person_time",
             "optimum", "predict", "reference", "dose_label", "marks", "sensitivity"}
SENSITIVITY_KEYS = {"label", "exclude_study_id"}
CHOICES = {"model": MODELS, "covariance": COVARIANCES, "method": METHODS, "type": TYPES,
           "fallback": ("gl",), "optimum": ("converged", "mvmeta")}


@dataclass(frozen=True)
class DoseSpec:
    """One dose-response analysis: which rows of which sheet, fitted how, described how."""

    name: str
    path: Path
    title: str
    outcome: str
    population: str
    comparison: str
    sheet: Path
    rationale: str
    options: DoseOptions
    filters: dict = field(default_factory=dict)
    dose_label: str = "Dose"
    marks: dict = field(default_factory=dict)  # dose -> label drawn on the curve
    sensitivity: dict | None = None  # {"label": ..., "exclude_study_id": [...]}: the curve re-fitted without them

    def sensitivity_rows(self, chosen: pd.DataFrame) -> pd.DataFrame:
        """The rows of the sensitivity analysis: the analysis' rows less the studies it leaves out."""
        return chosen[~chosen["study_id"].isin(self.sensitivity["exclude_study_id"])]

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[rows_matching(frame, self.filters)]


def load_dose_spec(path: Path, root: Path) -> DoseSpec:
    where = Path(path).name
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    unknown = sorted(set(data) - SPEC_KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SPEC_KEYS))}")
    missing = [key for key in TEXT_KEYS if not isinstance(data.get(key), str) or not data[key].strip()]
    if missing:
        raise SpecError(f"{where}: missing or not text: {', '.join(missing)}")
    table = data["doseresponse"]
    if not isinstance(table, dict):
        raise SpecError(f"{where}: [doseresponse] must be a table of settings")
    unknown = sorted(set(table) - DOSE_KEYS)
    if unknown:
        raise SpecError(f"{where}: [doseresponse] unknown key(s) {', '.join(unknown)}; allowed: "
                        f"{', '.join(sorted(DOSE_KEYS))}")
    for key, allowed in CHOICES.items():
        if key in table and table[key] not in allowed:
            raise SpecError(f"{where}: [doseresponse] {key} must be one of {', '.join(allowed)}; got {table[key]!r}")
    knots = table.get("knots")
    if not (knots is None or knots == "person-time" or (isinstance(knots, list) and all(
            isinstance(k, (int, float)) and not isinstance(k, bool) for k in knots))):
        raise SpecError(f"{where}: [doseresponse] knots must be a list of doses or \"person-time\"")
    filters = data.get("filter", {})
    if not isinstance(filters, dict):
        raise SpecError(f"{where}: [filter] must be a table of column = value(s)")
    options = DoseOptions(model=table.get("model", "rcs"),
                          knots=tuple(knots) if isinstance(knots, list) else knots,
                          covariance=table.get("covariance", "gl"), fallback=table.get("fallback"),
                          method=table.get("method", "REML"), type=table.get("type"),
                          n_column=table.get("n_column"), round_person_time=bool(table.get("round_person_time")),
                          optimum=table.get("optimum", "converged"),
                          predict=tuple(float(d) for d in table.get("predict", [4.375, 8.75, 17.5])),
                          reference=float(table.get("reference", 0.0)))
    marks = {float(k): str(v) for k, v in table.get("marks", {}).items()}
    sensitivity = table.get("sensitivity")
    if sensitivity is not None and (not isinstance(sensitivity, dict) or set(sensitivity) != SENSITIVITY_KEYS
                                    or not isinstance(sensitivity["exclude_study_id"], list)):
        raise SpecError(f"{where}: [doseresponse.sensitivity] takes label = \"...\" and exclude_study_id = [...]")
    return DoseSpec(name=Path(path).stem, path=Path(path), title=data["title"], outcome=data["outcome"],
                    population=data["population"], comparison=data["comparison"],
                    sheet=inside_project(data["sheet"], root, where), rationale=data["rationale"],
                    options=options, filters=filters, dose_label=table.get("dose_label", "Dose"), marks=marks,
                    sensitivity=sensitivity)


def load_dose_specs(root: Path) -> list[DoseSpec]:
    """Every dose-response spec in ``root/analyses`` in name order."""
    return [load_dose_spec(p, root) for p in sorted((Path(root) / "analyses").glob("*.toml")) if has_table(p, "doseresponse")]

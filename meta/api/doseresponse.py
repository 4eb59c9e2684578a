"""``meta.doseresponse``: a dose-response meta-analysis from Python (dosresmeta's model; the CLI's
``meta doseresponse`` calls this)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from meta.api.data import Data, selection_of
from meta.errors import OptionError
from meta.sheets.doses import DoseFit, DoseOptions, fit_dose_frame
from meta.stats.results import fmt_number, fmt_p
from meta.storage import write_if_changed

GUIDELINE_DOSES = (4.375, 8.75, 17.5)  # half, once and twice 150 min/week of moderate activity, in mMET-h/week


class DoseResponseResult:
    """A pooled dose-response curve. ``to_dict()`` is the ``meta doseresponse --json`` object;
    ``curve(doses)`` the relative risk with its 95% CI at any doses; ``plot(path)`` the curve."""

    def __init__(self, fitted: DoseFit, title: str = ""):
        self.fitted = fitted
        self.options = fitted.options
        self.title = title

    @property
    def fit(self):
        """The engine's result (``meta.stats.doseresponse.DoseResponseFit``): coefficients, vcov, Psi, Q, I²."""
        return self.fitted.fit

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.fitted.warnings

    def to_dict(self) -> dict:
        """The contract of docs/ARCHITECTURE.md (predictions on the ratio scale), the reference dose, warnings."""
        return self.fitted.to_dict()

    def curve(self, doses: Sequence[float], reference: float | None = None) -> pd.DataFrame:
        """RR (and 95% CI) at ``doses`` relative to ``reference`` (default: the analysis' reference dose)."""
        return self.fitted.curve(doses, reference)

    def plot(self, path: str | Path | None = None, *, title: str = "", dose_label: str = "Dose",
             marks: Mapping[float, str] | None = None):
        """The curve on a log scale with its 95% band, knots and a rug of the studies' doses; a
        matplotlib Figure, also written as PNG or SVG when ``path`` is given."""
        from meta.publish.curve_plot import curve_plot
        from meta.publish.plots import figure_bytes

        figure = curve_plot(self.fitted, title or self.title or "Dose-response", dose_label, marks or {})
        if path is not None:
            fmt = Path(path).suffix.lower().lstrip(".")
            if fmt not in ("png", "svg"):
                raise OptionError(f"plot() writes .png or .svg files; got {str(path)!r}")
            write_if_changed(Path(path), figure_bytes(figure, formats=(fmt,))[fmt])
        return figure

    def summary(self) -> str:
        """A printout in the manner of dosresmeta's ``summary``."""
        f = self.fit
        lines = [f"Dose-response meta-analysis: {f.model} model, {f.method} ({f.proc}), k = {f.k} studies",
                 f"Within-study covariance: {f.covariance}" + (f" (used: {f.covariance_used})"
                                                                 if f.covariance_used != f.covariance else "")]
        if f.knots is not None:
            lines.append("Knots: " + ", ".join(f"{k:g}" for k in f.knots))
        lines += ["", "Coefficients (log RR per unit of the design):"]
        se = np.sqrt(np.diag(f.vcov))
        for i, (b, s) in enumerate(zip(f.coefficients, se)):
            lines.append(f"  b{i + 1} = {fmt_number(b)}  se = {fmt_number(s)}")
        if f.k > 1:
            lines.append(f"\nTest for heterogeneity: Q(df = {f.q_df}) = {f.q:.4f}, p = {fmt_p(f.q_p)}; "
                         f"I^2 = {f.i2:.1f}%")
        nl = f.nonlinearity
        if nl and nl.get("df"):
            lines.append(f"Test of non-linearity: chi2(df = {nl['df']}) = {nl['chi2']:.4f}, p = {fmt_p(nl['p'])}")
        table = self.curve(self.options.predict or GUIDELINE_DOSES)
        lines += ["", f"Relative risk vs dose {self.options.reference:g}:"]
        lines += [f"  dose {r.dose:g}: {r.estimate:.3f} ({r.ci_lower:.3f} to {r.ci_upper:.3f})"
                  for r in table.itertuples()]
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        at = self.curve([8.75]).iloc[0] if self.fit.k else None
        point = f", RR at 8.75: {at.estimate:.2f} [{at.ci_lower:.2f}, {at.ci_upper:.2f}]" if at is not None else ""
        return f"DoseResponseResult({self.fit.model}, k={self.fit.k}{point})"


def doseresponse(data: Data, *, model: str = "rcs", knots=None, covariance: str = "gl",
                 fallback: str | None = None, method: str = "REML", type: str | None = None,
                 n_column: str | None = None, predict: Sequence[float] = (), reference: float = 0.0,
                 where: Mapping[str, object] | None = None, round_person_time: bool = False,
                 optimum: str = "converged") -> DoseResponseResult:
    """Fit a dose-response meta-analysis of a dose-level sheet (a DataFrame or a CSV path): one row per
    exposure category with ``study``, ``dose``, the RR (``estimate`` + CI, or ``yi`` + ``sei``), ``cases``,
    ``n`` and ``type`` (cc, ir, ci). dosresmeta's and Garcia 2023's column names are read too.

    ``model``: linear, quadratic or rcs (restricted cubic spline); ``knots``: doses, or ``"person-time"``
    (Garcia 2023), default the 10/50/90% quantiles; ``covariance``: gl, hamling, hamling-2017 or
    independent; ``fallback="gl"`` re-fits with Greenland-Longnecker when a study's pseudo-counts fail;
    ``method``: REML, ML or FE; ``predict``: doses at which ``to_dict()["predictions"]`` gives the RR
    relative to ``reference``. Raises ``meta.SheetError`` naming row, column and fix of every problem.
    """
    options = DoseOptions(model=model, knots=_knots(knots), covariance=covariance, fallback=fallback, method=method,
                          type=type, n_column=n_column, round_person_time=round_person_time, optimum=optimum,
                          predict=tuple(float(d) for d in predict), reference=float(reference))
    chosen = selection_of(data, where, metafor_names=False)
    return DoseResponseResult(fit_dose_frame(chosen.frame, chosen.name, options))


def _knots(knots):
    if knots is None or isinstance(knots, str):
        if isinstance(knots, str) and knots != "person-time":
            raise OptionError(f"knots must be doses or 'person-time'; got {knots!r}")
        return knots
    return tuple(float(k) for k in knots)

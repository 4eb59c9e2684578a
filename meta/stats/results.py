"""Results of one pooled analysis: a frozen dataclass, its JSON/frame form and its printout.

The JSON object (``meta pool --json``) holds exactly the fields of the results contract in
``docs/ARCHITECTURE.md`` on the analysis scale (log for ratio measures; I^2 in percent), the same
point and intervals back-transformed for ratio measures, and the provenance of the fit.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from meta._version import __version__
from meta.stats.distributions import norm_isf
from meta.stats.effects import EffectSizes
from meta.stats.options import METHOD_NAMES, RATIO_MEASURES, PoolOptions
from meta.stats.pooling import BatchFit

CONTRACT_FIELDS = ("k", "measure", "method", "ci_method", "estimate", "se", "ci_lower", "ci_upper",
                   "p", "pi_lower", "pi_upper", "tau2", "tau2_ci_lower", "tau2_ci_upper", "i2",
                   "h2", "q", "q_p")


@dataclass(frozen=True)
class SubgroupTest:
    """Test for subgroup differences: Q between subgroup estimates on ``df`` degrees of freedom."""

    q: float
    df: int
    p: float


@dataclass(frozen=True)
class Provenance:
    """What produced a result: a hash of the effect sizes pooled, the options and the version."""

    input_hash: str
    measure: str
    method: str
    ci_method: str
    level: float
    version: str = __version__


@dataclass(frozen=True, repr=False)
class PoolResult:
    """One pooled analysis. Estimates are on the analysis scale (log for RR, OR, HR).

    Attributes: ``k`` studies; ``estimate`` pooled effect with standard error ``se``, confidence
    interval ``ci_lower``..``ci_upper`` and two-sided ``p``; ``pi_lower``..``pi_upper`` prediction
    interval; ``tau2`` between-study variance with its Q-profile CI; ``i2`` (%) share of total
    variability due to heterogeneity; ``h2`` total / sampling variability; ``q`` Cochran's Q on
    ``k - 1`` df with p-value ``q_p``; ``converged`` False when an iterative estimator did not;
    ``labels``, ``weights`` (percent), ``yi``, ``vi``: the studies pooled, in sheet order.
    """

    k: int
    measure: str
    method: str
    ci_method: str
    estimate: float
    se: float
    ci_lower: float
    ci_upper: float
    p: float
    pi_lower: float
    pi_upper: float
    tau2: float
    tau2_se: float
    tau2_ci_lower: float
    tau2_ci_upper: float
    i2: float
    i2_ci_lower: float
    i2_ci_upper: float
    h2: float
    h2_ci_lower: float
    h2_ci_upper: float
    q: float
    q_p: float
    converged: bool
    iterations: int
    labels: tuple[str, ...]
    weights: tuple[float, ...]
    yi: tuple[float, ...]
    vi: tuple[float, ...]
    corrected: tuple[str, ...]
    dropped: tuple[str, ...]
    warnings: tuple[str, ...]
    provenance: Provenance = field(repr=False, default=None)

    @property
    def is_ratio(self) -> bool:
        return self.measure in RATIO_MEASURES

    def back(self, value: float) -> float:
        """A value on the measure's natural scale (exp for ratio measures)."""
        return math.exp(value) if self.is_ratio and value == value else value

    def to_dict(self) -> dict:
        """The results contract: exactly the fields of docs/ARCHITECTURE.md, then exp() of them for ratios, then provenance."""
        out = {name: json_value(getattr(self, name)) for name in CONTRACT_FIELDS}
        if self.is_ratio:
            for name in EXP_FIELDS:
                out[f"{name}_exp"] = json_value(self.back(getattr(self, name)))
        out["i2_ci_lower"], out["i2_ci_upper"] = json_value(self.i2_ci_lower), json_value(self.i2_ci_upper)
        out["h2_ci_lower"], out["h2_ci_upper"] = json_value(self.h2_ci_lower), json_value(self.h2_ci_upper)
        out["converged"] = bool(self.converged)
        out["studies"] = list(self.labels)
        out["corrected"] = list(self.corrected)
        out["dropped"] = list(self.dropped)
        out["warnings"] = list(self.warnings)
        out["provenance"] = asdict(self.provenance) if self.provenance else None
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_frame(self) -> pd.DataFrame:
        """One-row frame of the contract fields, with ``*_exp`` columns for ratio measures (as ``to_dict``)."""
        row = {name: getattr(self, name) for name in CONTRACT_FIELDS}
        if self.is_ratio:
            row.update({f"{name}_exp": self.back(getattr(self, name)) for name in EXP_FIELDS})
        return pd.DataFrame([row])

    def studies(self) -> pd.DataFrame:
        """One row per study pooled: ``study``, ``yi``, ``vi``, ``weight`` (percent of the total) and the
        study's own estimate with its confidence interval on the measure's natural scale."""
        yi, se = np.array(self.yi), np.sqrt(np.array(self.vi))
        z = float(norm_isf((1 - self.provenance.level / 100) / 2)) if self.provenance else 1.959963984540054
        natural = np.exp if self.is_ratio else (lambda x: x)
        return pd.DataFrame({"study": list(self.labels), "yi": yi, "vi": np.array(self.vi),
                             "weight": np.array(self.weights), "estimate": natural(yi),
                             "ci_lower": natural(yi - z * se), "ci_upper": natural(yi + z * se)})

    def summary(self) -> str:
        """The readable printout of ``meta pool`` (metafor-like, with glossed statistics)."""
        return render_text(self)

    def headline(self) -> str:
        """'RR 0.49 [0.34, 0.70]': the estimate and CI on the natural scale, two decimals."""
        return (f"{self.measure} {two(self.back(self.estimate))} "
                f"[{two(self.back(self.ci_lower))}, {two(self.back(self.ci_upper))}]")

    def __repr__(self) -> str:
        model = "FE" if self.method == "FE" else self.method + ("+KH" if self.ci_method == "knha" else "")
        i2 = "" if self.method == "FE" or self.k < 2 else f", I\u00b2={self.i2:.0f}%"
        return f"PoolResult({self.headline()}, k={self.k}, {model}{i2})"

    def _repr_html_(self) -> str:
        """A small table for notebooks: the headline numbers on the natural scale."""
        level = f"{self.provenance.level:g}%" if self.provenance else "95%"
        rows = [("Studies (k)", str(self.k)), ("Model", METHOD_NAMES.get(self.method, self.method)
                                                    + (", Knapp-Hartung" if self.ci_method == "knha" else "")),
                (self.measure, two(self.back(self.estimate))),
                (f"{level} CI", f"{two(self.back(self.ci_lower))} to {two(self.back(self.ci_upper))}"),
                ("p", fmt_p(self.p))]
        if self.method != "FE" and self.k > 1:
            rows += [("Prediction interval", f"{two(self.back(self.pi_lower))} to {two(self.back(self.pi_upper))}"),
                     ("tau\u00b2", fmt_number(self.tau2)), ("I\u00b2", f"{self.i2:.1f}%"),
                     ("Q (p)", f"{self.q:.2f} ({fmt_p(self.q_p)})")]
        body = "".join(f"<tr><th>{html.escape(a)}</th><td>{html.escape(b)}</td></tr>" for a, b in rows)
        return f"<table class=\"meta-pool-result\">{body}</table>"


EXP_FIELDS = ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")


def two(x: float) -> str:
    """Two decimals, never '-0.00'; NA for a missing value."""
    if x != x:
        return "NA"
    text = f"{x:.2f}"
    return "0.00" if text == "-0.00" else text


def json_value(value):
    """JSON-safe Python value: NaN and infinities become None, numpy scalars Python numbers."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def input_hash(effects: EffectSizes) -> str:
    """SHA-256 of the labels, yi and vi pooled (stable across runs and machines)."""
    digest = hashlib.sha256()
    for label, y, v in zip(effects.labels, effects.yi, effects.vi):
        digest.update(f"{label}\t{float(y)!r}\t{float(v)!r}\n".encode())
    return digest.hexdigest()


def result_from_fit(fit: BatchFit, row: int, effects: EffectSizes, options: PoolOptions,
                    extra_warnings: tuple[str, ...] = ()) -> PoolResult:
    """The ``row``-th analysis of a batch fit as a PoolResult."""
    def value(name):
        return float(getattr(fit, name)[row])

    return PoolResult(
        k=int(fit.k[row]), measure=effects.measure, method=options.method, ci_method=options.ci,
        **{name: value(name) for name in (
            "estimate", "se", "ci_lower", "ci_upper", "p", "pi_lower", "pi_upper", "tau2",
            "tau2_se", "tau2_ci_lower", "tau2_ci_upper", "i2", "i2_ci_lower", "i2_ci_upper",
            "h2", "h2_ci_lower", "h2_ci_upper", "q", "q_p")},
        converged=bool(fit.converged[row]), iterations=int(fit.iterations[row]),
        labels=effects.labels, weights=tuple(float(w) for w in fit.weights[row]),
        yi=tuple(float(y) for y in effects.yi), vi=tuple(float(v) for v in effects.vi),
        corrected=effects.corrected, dropped=effects.dropped,
        warnings=tuple(effects.warnings) + tuple(extra_warnings),
        provenance=Provenance(input_hash(effects), effects.measure, options.method, options.ci,
                              options.level),
    )


def render_text(result: PoolResult, warnings: bool = True) -> str:
    """A metafor-like printout with a headline and glossed statistics (and the warnings, unless the
    caller shows them itself, as the CLI does on stderr)."""
    r = result
    model = "Fixed-effect model" if r.method == "FE" else "Random-effects model"
    estimator = "" if r.method == "FE" else f"; tau^2 estimator: {r.method} ({METHOD_NAMES[r.method]})"
    lines = [f"{model} (k = {r.k}{estimator})", ""]
    if r.method != "FE":
        lines.append(f"tau^2 (estimated amount of total heterogeneity): {fmt_number(r.tau2)} "
                     f"(SE = {fmt_number(r.tau2_se)}; {r.provenance.level:g}% CI {fmt_number(r.tau2_ci_lower)} to {fmt_number(r.tau2_ci_upper)})")
        lines.append(f"tau (square root of estimated tau^2 value):      {fmt_number(math.sqrt(r.tau2))}")
    lines.append(f"I^2 (total heterogeneity / total variability):   {r.i2:.2f}%")
    lines.append(f"H^2 (total variability / sampling variability):  {r.h2:.2f}")
    if r.k > 1:
        lines += ["", f"Test for heterogeneity: Q(df = {r.k - 1}) = {r.q:.4f}, p = {fmt_p(r.q_p)}"]
    test = "t (Knapp-Hartung, df = %d)" % (r.k - 1) if r.ci_method == "knha" and r.k > 1 else "z"
    lines += ["", f"Model results ({test} test):", "",
              f"  estimate = {fmt_number(r.estimate)}  se = {fmt_number(r.se)}  p = {fmt_p(r.p)}",
              f"  {r.provenance.level:g}% CI {fmt_number(r.ci_lower)} to {fmt_number(r.ci_upper)}; "
              f"prediction interval {fmt_number(r.pi_lower)} to {fmt_number(r.pi_upper)}"]
    if r.is_ratio:
        lines.append(f"  {r.measure} = {r.back(r.estimate):.4f} ({r.back(r.ci_lower):.4f} to "
                     f"{r.back(r.ci_upper):.4f}); prediction interval {r.back(r.pi_lower):.4f} to "
                     f"{r.back(r.pi_upper):.4f}")
    if not r.converged:
        lines += ["", f"WARNING: the {r.method} estimator did not converge; these numbers are not reliable."]
    if r.corrected:
        lines += ["", "0.5 added to every cell (zero cell): " + ", ".join(r.corrected)]
    if r.dropped:
        lines += ["", "Left out (no events in either arm): " + ", ".join(r.dropped)]
    for warning in r.warnings if warnings else ():
        lines += [f"Warning: {warning}"]
    return "\n".join(lines) + "\n"


def fmt_number(x: float) -> str:
    """Four decimals, or NA."""
    return "NA" if x != x else f"{x:.4f}"


def fmt_p(p: float) -> str:
    """A p-value as metafor prints it (<.0001 below 1e-4), or NA."""
    if p != p:
        return "NA"
    return "<.0001" if p < 1e-4 else f"{p:.4f}"

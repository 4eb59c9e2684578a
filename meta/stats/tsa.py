"""Trial sequential analysis (TSA) of a living meta-analysis: is the evidence firm yet?

At every update (publication year) the studies published so far are pooled and the cumulative
z of the pooled estimate is compared with monitoring boundaries that keep the chance of a false
positive, over all updates, at alpha (Wetterslev et al. 2008, J Clin Epidemiol 61:64; Thorlund et
al. 2011, *User manual for trial sequential analysis*, Copenhagen Trial Unit).

- Z-curve: the cumulative test of the pooled estimate with the analysis' model
  (``pooling.pool_batch``) on the standard normal scale. ``z_curve="primary"`` (default) uses the
  analysis' own test: the Wald z = estimate / se, or, where the analysis uses Knapp-Hartung
  intervals, the z-equivalent of its t-test, sign(estimate) Phi^-1(1 - p/2), so that at the final
  analysis the TSA and the published CI cannot disagree; ``z_curve="wald"`` always uses the Wald z,
  as the TSA software (which has no Knapp-Hartung test) does.
- Required information size (RIS), two-sided alpha and power 1 - beta, for an anticipated effect:
  binary: 4 (z_{1-alpha/2} + z_{1-beta})^2 p(1-p) / (pc rrr)^2, p = (pc + pe)/2, pe = pc (1 - rrr);
  mean difference: 4 (z + z)^2 sd^2 / diff^2; SMD: 4 (z + z)^2 / smd^2 participants (two equal
  arms; Pogue & Yusuf 1997, Control Clin Trials 18:580; Wetterslev et al. 2008). Adjusted for
  heterogeneity by the diversity D^2 = 1 - V_F / V_R of the current meta-analysis (V_F, V_R the
  variances of the fixed-effect and the model's pooled estimate): RIS / (1 - D^2) (Wetterslev
  et al. 2009, BMC Med Res Methodol 9:86).
- Information: ``"participants"``, the accrued number of participants against the RIS (as the TSA
  software), or ``"inverse-variance"``, the accrued fixed-effect information sum(1/vi) against
  (z + z)^2 / theta^2 / (1 - D^2), theta the anticipated effect on the analysis scale (log RR,
  log OR, RD, MD, SMD). With the D^2 of the current analysis the latter fraction at the latest
  update equals the model's information 1/V_R over (z + z)^2 / theta^2.
- Monitoring boundaries: Lan-DeMets alpha-spending (Lan & DeMets 1983, Biometrika 70:659) with the
  O'Brien-Fleming-type function alpha*(t) = 2 - 2 Phi(z_{alpha/2} / sqrt(t)), at the information
  fractions t of the updates, by the recursive numerical integration of Armitage, McPherson & Rowe
  (1969) on the grid of Jennison & Turnbull (2000, *Group Sequential Methods*, ch. 19.2), as the
  programs of Reboussin et al. (2000, Control Clin Trials 21:190; R's ldbounds) do. The first
  update that reaches the RIS is the final analysis and spends what is left of alpha; later
  updates are compared with its boundary.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special

from meta.errors import MetaError, OptionError
from meta.stats.distributions import norm_isf
from meta.stats.options import CI_METHODS, METHODS, PoolOptions, check_choice
from meta.stats.pooling import pool_batch
from meta.stats.results import json_value
from meta.stats.rootfind import brent_roots

INFORMATION_KINDS = ("participants", "inverse-variance")
GRID_SIZE = 64  # r of Jennison & Turnbull's grid (r = 16 is accurate to about 1e-6; 64 to about 1e-9)
SPLITS = ("per-boundary", "shared")
Z_CURVES = ("primary", "wald")
_BOUNDARY_TOL = 1e-12
_NO_ALPHA = 1e-300  # an increment of alpha below this is nothing: the boundary is infinite


class TSAError(MetaError):
    """A trial sequential analysis that cannot be computed from the data given."""


# --- the anticipated effect and the required information size -------------------------------------


@dataclass(frozen=True)
class AnticipatedEffect:
    """The effect the required information size is powered to detect; build it with ``binary``,
    ``mean_difference`` or ``standardised``.

    ``kind`` "binary": relative risk reduction ``value`` (0.2 = 20%) at control event proportion
    ``control_risk``; "mean": mean difference ``value`` with standard deviation ``sd``; "smd":
    standardised mean difference ``value``.
    """

    kind: str
    value: float
    control_risk: float | None = None
    sd: float | None = None

    @classmethod
    def binary(cls, rrr: float, control_risk: float) -> "AnticipatedEffect":
        if not 0 < control_risk < 1 or not 0 < rrr < 1:
            raise OptionError(f"control_risk and rrr must lie between 0 and 1; got {control_risk}, {rrr}")
        return cls("binary", float(rrr), control_risk=float(control_risk))

    @classmethod
    def mean_difference(cls, difference: float, sd: float) -> "AnticipatedEffect":
        if difference == 0 or not sd > 0:
            raise OptionError(f"the mean difference must be non-zero and the SD positive; got {difference}, {sd}")
        return cls("mean", float(difference), sd=float(sd))

    @classmethod
    def standardised(cls, smd: float) -> "AnticipatedEffect":
        if smd == 0:
            raise OptionError("the standardised mean difference must be non-zero")
        return cls("smd", float(smd))

    def describe(self) -> str:
        if self.kind == "binary":
            at = "" if self.control_risk is None else f" at control event proportion {100 * self.control_risk:g}%"
            return f"relative risk reduction {100 * self.value:g}%{at}"
        if self.kind == "mean":
            return f"mean difference {self.value:g} (SD {self.sd:g})"
        return f"standardised mean difference {self.value:g}"

    def participants(self, alpha: float, power: float) -> float:
        """Required participants of a single two-arm trial (equal arms), two-sided ``alpha``."""
        zz = (_z(alpha / 2) + _z(1 - power)) ** 2
        if self.kind == "binary":
            pc = self.control_risk
            pe = pc * (1 - self.value)
            p = (pc + pe) / 2
            return 4 * zz * p * (1 - p) / (pc - pe) ** 2
        if self.kind == "mean":
            return 4 * zz * self.sd**2 / self.value**2
        return 4 * zz / self.value**2

    def theta(self, measure: str) -> float:
        """The anticipated effect on the analysis scale of ``measure`` (log for ratio measures)."""
        allowed = {"binary": ("RR", "HR", "OR", "RD"), "mean": ("MD", "GEN"), "smd": ("SMD", "GEN")}[self.kind]
        check_choice(f"measure (for a {self.kind} anticipated effect)", measure, allowed)
        if self.kind != "binary":
            return self.value
        if measure in ("RR", "HR"):
            return math.log(1 - self.value)
        pc = self.control_risk
        pe = pc * (1 - self.value)
        if measure == "OR":
            return math.log(pe / (1 - pe)) - math.log(pc / (1 - pc))
        return pe - pc


def _z(p: float) -> float:
    """Upper-tail standard normal quantile."""
    return float(-special.ndtri(p))


# --- Lan-DeMets boundaries ------------------------------------------------------------------------


def obrien_fleming_spending(t, alpha: float):
    """alpha*(t) = 2 - 2 Phi(z_{alpha/2} / sqrt(t)), the O'Brien-Fleming-type spending function at level alpha."""
    t = np.asarray(t, dtype=float)
    return 2 * special.ndtr(-_z(alpha / 2) / np.sqrt(t))


def lan_demets_bounds(fractions, alpha: float = 0.05, sides: int = 2,
                      split: str = "per-boundary") -> tuple[float, ...]:
    """Boundaries (z scale) of the O'Brien-Fleming-type alpha-spending at increasing information
    fractions in (0, 1] (Lan & DeMets 1983; Reboussin et al. 2000).

    ``sides`` 1: an upper boundary at one-sided level ``alpha`` (gsDesign's ``sfLDOF``). ``sides``
    2: symmetric boundaries +-b_k at two-sided level ``alpha``, which spend it by ``split``:
    "per-boundary", each boundary alpha/2 by the function at level alpha/2 (ldbounds, gsDesign,
    rpact and their published tables: 4.877, 3.357, 2.680, 2.290, 2.031 for five equal looks at
    0.05); "shared", the function at level alpha spent over both boundaries, half each (the
    formula read with the two-sided alpha: 4.383, 3.100, 2.553, 2.254, 2.064). A look at which no
    alpha is spent (below 1e-300) has an infinite boundary.
    """
    t = np.asarray(fractions, dtype=float)
    if t.ndim != 1 or t.size == 0 or not (np.all(np.diff(t) > 0) and t[0] > 0 and t[-1] <= 1):
        raise OptionError(f"information fractions must increase strictly within (0, 1]; got {list(t)}")
    if sides not in (1, 2):
        raise OptionError(f"sides must be 1 or 2; got {sides}")
    check_choice("split", split, SPLITS)
    if not 0 < alpha < 1:
        raise OptionError(f"alpha must lie between 0 and 1; got {alpha}")
    if sides == 1:
        spent = obrien_fleming_spending(t, alpha)
    elif split == "per-boundary":
        spent = obrien_fleming_spending(t, alpha / 2)
    else:
        spent = obrien_fleming_spending(t, alpha) / 2
    per_boundary = np.diff(np.concatenate([[0.0], spent]))
    bounds = []
    grid = weights = density = None
    for k in range(t.size):
        if k == 0:
            b = _z(per_boundary[0]) if per_boundary[0] > _NO_ALPHA else math.inf
        else:
            b = _next_bound(grid, weights * density, t[k - 1], t[k], per_boundary[k])
        bounds.append(b)
        new_grid, new_weights = _simpson_grid(-b if sides == 2 else -math.inf, b)
        if k == 0:
            density = _normal_pdf(new_grid)
        else:
            density = _propagate(grid, weights * density, t[k - 1], t[k], new_grid)
        grid, weights = new_grid, new_weights
    return tuple(float(b) for b in bounds)


def _normal_pdf(x):
    return np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)


def _simpson_grid(lower: float, upper: float, r: int = GRID_SIZE):
    """Jennison & Turnbull's grid (section 19.2.1, mean 0) cut to the continuation region
    (lower, upper), with midpoints added and Simpson's rule weights."""
    i = np.arange(1, 6 * r)
    x = np.where(i < r, -3 - 4 * np.log(r / np.minimum(i, r)),
                 np.where(i <= 5 * r, -3 + 3 * (i - r) / (2 * r), 3 + 4 * np.log(r / np.maximum(6 * r - i, 1))))
    inside = x[(x > lower) & (x < upper)]
    points = np.concatenate([[lower] if lower > x[0] else [], inside, [upper] if upper < x[-1] else []])
    z = np.empty(2 * points.size - 1)
    z[0::2] = points
    z[1::2] = (points[:-1] + points[1:]) / 2
    w = np.zeros_like(z)
    gaps = np.diff(points)
    w[1::2] = 4 * gaps / 6
    w[0:-1:2] += gaps / 6
    w[2::2] += gaps / 6
    return z, w


def _propagate(grid, mass, t_prev, t_next, new_grid):
    """Density of Z at the next look on ``new_grid``, from the weighted density ``mass`` at the
    previous look (independent increments of the score sqrt(t) Z)."""
    delta = t_next - t_prev
    shift = (new_grid[:, None] * math.sqrt(t_next) - grid[None, :] * math.sqrt(t_prev)) / math.sqrt(delta)
    return (_normal_pdf(shift) @ mass) * math.sqrt(t_next / delta)


def _upper_exit(grid, mass, t_prev, t_next, b):
    """P(Z_next >= b, continued to the previous look)."""
    delta = t_next - t_prev
    return float(special.ndtr((grid * math.sqrt(t_prev) - b * math.sqrt(t_next)) / math.sqrt(delta)) @ mass)


def _next_bound(grid, mass, t_prev, t_next, target):
    if target <= _NO_ALPHA:
        return math.inf
    def excess(b, rows):
        return np.array([_upper_exit(grid, mass, t_prev, t_next, b[0]) - target])

    lower, upper = np.array([-10.0]), np.array([40.0])
    root, _ = brent_roots(excess, lower, upper, excess(lower, None), excess(upper, None),
                          tol=_BOUNDARY_TOL, maxiter=200)
    return float(root[0])


# --- the trial sequential analysis ----------------------------------------------------------------


@dataclass(frozen=True)
class TSAPoint:
    """One update: the studies published up to ``label`` (a year, or "year n/a" for studies without
    one), ``k`` of them; accrued ``information`` and its ``fraction`` of the required information
    (may exceed 1); cumulative ``z``; the monitoring ``boundary`` (|z| at or above it crosses;
    infinite where no alpha is spent yet) and whether it was ``crossed``."""

    label: str
    k: int
    information: float
    fraction: float
    z: float
    boundary: float
    crossed: bool


@dataclass(frozen=True)
class TSAResult:
    """A trial sequential analysis of one meta-analysis.

    ``information`` "participants" or "inverse-variance"; ``alpha`` two-sided, spent by ``split``
    (see ``lan_demets_bounds``); ``required`` the required information (participants, or
    inverse-variance units) after the heterogeneity adjustment, ``required_fixed`` before it;
    ``diversity`` the D^2 used (``diversity_given`` False when estimated from the analysis);
    ``points`` one per update in publication order; ``final_boundary`` the boundary at the
    required information (of the update that reached it, or of the next update should that one
    reach it); ``fraction`` of the required information at the latest update; ``crossed_at`` the
    label of the first update whose z crossed the boundary (None if none did); ``verdict`` in words;
    ``z_test`` the test behind the Z-curve ("wald" or "knha", the latter as z-equivalents).
    """

    measure: str
    method: str
    information: str
    alpha: float
    power: float
    split: str
    anticipated: AnticipatedEffect
    diversity: float
    diversity_given: bool
    required_fixed: float
    required: float
    points: tuple[TSAPoint, ...]
    final_boundary: float
    fraction: float
    crossed_at: str | None
    verdict: str
    warnings: tuple[str, ...]
    z_test: str = "wald"

    def to_dict(self) -> dict:
        """JSON-safe form (infinite boundaries become None)."""
        out = {name: json_value(value) for name, value in asdict(self).items() if name not in ("points", "anticipated")}
        out["anticipated"] = {name: json_value(v) for name, v in asdict(self.anticipated).items()}
        out["anticipated"]["description"] = self.anticipated.describe()
        out["points"] = [{name: json_value(v) for name, v in asdict(p).items()} for p in self.points]
        out["warnings"] = list(self.warnings)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)




def trial_sequential_analysis(yi, vi, years, anticipated: AnticipatedEffect, measure: str,
                              method: str = "REML", information: str = "participants", n=None,
                              alpha: float = 0.05, power: float = 0.90, diversity: float | None = None,
                              split: str = "per-boundary", ci: str = "z", z_curve: str = "primary") -> TSAResult:
    """Cumulative Z-curve, required information size and two-sided O'Brien-Fleming-type
    Lan-DeMets boundaries of a meta-analysis updated once per publication year.

    ``years``: publication year of each study (None/NaN: the study counts at a last update,
    "year n/a"); ``n``: participants per study (needed for ``information="participants"``);
    ``diversity``: an anticipated D^2 in [0, 1) instead of the one of the analysis; ``method``: the
    tau^2 estimator of the analysis ("FE": fixed effect, D^2 = 0); ``ci``: its interval method ("z"
    or "knha"), whose test the Z-curve follows unless ``z_curve="wald"``. Raises TSAError or OptionError.
    """
    check_choice("method", method, METHODS)
    check_choice("information", information, INFORMATION_KINDS)
    check_choice("split", split, SPLITS)
    check_choice("ci", ci, CI_METHODS)
    check_choice("z_curve", z_curve, Z_CURVES)
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise OptionError(f"alpha and power must lie between 0 and 1; got {alpha}, {power}")
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    if yi.size == 0 or yi.size != vi.size or len(years) != yi.size:
        raise TSAError("yi, vi and years need one entry per study (and at least one study)")
    theta = anticipated.theta(measure)  # also checks that the anticipated effect fits the measure
    sizes = _participants(n, yi.size) if information == "participants" else None
    labels, index = _updates(years)
    fits = _cumulative_fits(yi, vi, index, method, ci if z_curve == "primary" else "z")
    warnings = []
    if diversity is None:
        d2 = _diversity(vi, fits["se"][-1] ** 2) if method != "FE" else 0.0
    elif 0 <= diversity < 1:
        d2 = float(diversity)
    else:
        raise OptionError(f"diversity (D^2) must lie in [0, 1); got {diversity}")
    zz = (_z(alpha / 2) + _z(1 - power)) ** 2
    if information == "participants":
        required_fixed = anticipated.participants(alpha, power)
        accrued = np.array([sizes[members].sum() for members in index])
    else:
        required_fixed = zz / theta**2
        accrued = np.array([np.sum(1.0 / vi[members]) for members in index])
    required = required_fixed / (1 - d2)
    fraction = accrued / required
    z = fits["z"]
    boundary, final_boundary = _boundaries(fraction, alpha, split)
    crossed = np.abs(z) >= boundary
    first = int(np.argmax(crossed)) if crossed.any() else None
    points = tuple(TSAPoint(label, int(len(members)), float(a), float(f), float(zv), float(b), bool(c))
                   for label, members, a, f, zv, b, c in zip(labels, index, accrued, fraction, z, boundary, crossed))
    if first is not None:
        verdict = "firm evidence: boundary crossed"
    elif fraction[-1] >= 1:
        verdict = "no firm evidence: required information reached without crossing the boundary"
    else:
        verdict = f"not yet: boundary not crossed ({100 * fraction[-1]:.0f}% of the required information)"
    if yi.size < 2:
        warnings.append("one study: the diversity D^2 and the Z-curve rest on a single trial")
    return TSAResult(measure, method, information, float(alpha), float(power), split, anticipated, float(d2),
                     diversity is not None, float(required_fixed), float(required), points, final_boundary,
                     float(fraction[-1]), labels[first] if first is not None else None, verdict, tuple(warnings),
                     "knha" if ci == "knha" and z_curve == "primary" else "wald")


def _participants(n, k: int) -> np.ndarray:
    if n is None:
        raise TSAError("information by participants needs the number of participants of every study")
    sizes = np.array([math.nan if v is None else float(v) for v in n], dtype=float)
    if sizes.size != k or not np.all(np.isfinite(sizes) & (sizes > 0)):
        missing = [str(i + 1) for i, v in enumerate(sizes) if not (math.isfinite(v) and v > 0)]
        raise TSAError("information by participants needs a positive number of participants for every study; "
                       f"missing or not positive for study {', '.join(missing) or '(count differs)'}; "
                       "use information='inverse-variance'")
    return sizes


def _updates(years) -> tuple[list[str], list[np.ndarray]]:
    """One update per publication year in order; studies without a year join a last update."""
    values = np.array([math.nan if y is None or y == "" else float(y) for y in years], dtype=float)
    known = sorted(set(values[np.isfinite(values)]))
    labels, index = [], []
    for year in known:
        labels.append(f"{year:g}")
        index.append(np.flatnonzero(values <= year))
    if np.isnan(values).any():
        labels.append("year n/a")
        index.append(np.arange(values.size))
    return labels, index


def _cumulative_fits(yi, vi, index, method, ci) -> dict:
    """The pooled estimate, its standard error (Wald) and the test's z of every update, in one batch.

    With ``ci="knha"`` z is the z-equivalent of the Knapp-Hartung t-test (its p-value on the normal
    scale); an update of one study is tested with z, as the analysis itself is."""
    fit = pool_batch(np.concatenate([yi[m] for m in index]), np.concatenate([vi[m] for m in index]),
                     np.array([m.size for m in index]), PoolOptions(method=method, ci=ci, qprofile=False),
                     weights=False)
    if not fit.converged.all():
        failed = int(np.argmin(fit.converged))
        raise TSAError(f"the {method} model of update {failed + 1} did not converge")
    tau2 = np.repeat(fit.tau2, [m.size for m in index])
    weights = 1.0 / (np.concatenate([vi[m] for m in index]) + tau2)
    starts = np.cumsum([0] + [m.size for m in index[:-1]])
    se = np.sqrt(1.0 / np.add.reduceat(weights, starts))  # the model's (Wald) standard error
    z = fit.estimate / se
    if ci == "knha":  # the z-equivalent of the t-test (the Wald z where p underflows to 0)
        with np.errstate(divide="ignore"):
            z = np.where(fit.p > 0, np.sign(fit.estimate) * norm_isf(fit.p / 2), z)
    return {"estimate": fit.estimate, "se": se, "z": z}


def _diversity(vi, model_variance: float) -> float:
    """D^2 = 1 - V_F / V_R (Wetterslev et al. 2009), from the latest update."""
    fixed_variance = 1.0 / np.sum(1.0 / vi)
    return max(0.0, 1.0 - fixed_variance / model_variance)


def _boundaries(fraction: np.ndarray, alpha: float, split: str) -> tuple[np.ndarray, float]:
    """Boundaries at the updates, and the boundary of the final analysis at the required
    information. The first update reaching it is the final analysis (t = 1) and later ones keep its
    boundary; before that, the final boundary is the one an update reaching it next would have."""
    reached = np.flatnonzero(fraction >= 1)
    if reached.size:
        last = reached[0]
        bounds = np.array(lan_demets_bounds(np.minimum(fraction[: last + 1], 1.0), alpha, 2, split))
        return np.concatenate([bounds, np.full(fraction.size - last - 1, bounds[-1])]), float(bounds[-1])
    bounds = np.array(lan_demets_bounds(np.append(fraction, 1.0), alpha, 2, split))
    return bounds[:-1], float(bounds[-1])

"""Forest and cumulative forest plots, PNG and SVG, byte-stable across runs and machines.

The forest plot is drawn on plain matplotlib axes: squares sized by weight, the pooled diamond,
the prediction interval, subgroup diamonds with the test for subgroup differences, a
heterogeneity line, a log axis with the null line and 'favours' labels for ratio measures. The
`forestplot` package draws the cumulative plot (one row per step, estimate and CI, annotations),
which is exactly what it is made for; it has no weight-sized squares, diamonds or prediction
intervals, so the main forest plot does not use it.

Determinism: the bundled DejaVu Sans font, a fixed SVG hash salt, no creation date or software
version in the files, fixed DPI.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import forestplot  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402

from meta.stats.distributions import norm_isf  # noqa: E402
from meta.stats.results import PoolResult, SubgroupTest, two  # noqa: E402

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "svg.hashsalt": "meta-living",
    "svg.fonttype": "none",
    "path.simplify": False,
    "text.parse_math": False,  # text from sheets is shown as written ('$' is not TeX)
    "text.hinting": "no_hinting",  # glyphs drawn about 15% faster; no visible difference at 110 dpi
}
PNG_METADATA = {"Software": None}
PNG_COMPRESSION = {"compress_level": 3}  # zlib level: faster than the default 6 and no larger for plots
SVG_METADATA = {"Date": None, "Creator": None}
DPI = 110


@dataclass(frozen=True)
class Subgroup:
    """The pooled result of one subgroup level."""

    level: str
    result: PoolResult


@dataclass(frozen=True)
class ForestData:
    """Everything a forest plot shows."""

    title: str
    result: PoolResult
    favours: tuple[str, str]
    subgroups: tuple[Subgroup, ...] = ()
    subgroup_of: tuple[str, ...] = ()
    subgroup_test: SubgroupTest | None = None


def fmt_ci(result: PoolResult, est: float, lo: float, hi: float) -> str:
    b = result.back
    return f"{two(b(est))} [{two(b(lo))}, {two(b(hi))}]"


def heterogeneity_text(r: PoolResult) -> str:
    if r.k < 2:
        return "Heterogeneity: not applicable (k = 1)"
    return (f"Heterogeneity: tau\u00b2 = {r.tau2:.3f}; I\u00b2 = {r.i2:.0f}%; "
            f"Q = {r.q:.2f}, df = {r.k - 1}, {_p(r.q_p)}")


def _p(p: float) -> str:
    """'p < 0.001' or 'p = 0.123'."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def forest_plot(data: ForestData) -> plt.Figure:
    """The forest plot of one analysis (with subgroups where the spec has them)."""
    r = data.result
    z = norm_isf((1 - r.provenance.level / 100) / 2)
    rows = _layout(data)
    height = 1.6 + 0.24 * len(rows)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(10.5, height), dpi=DPI)
        ax = fig.add_axes([0.34, 0.9 / height + 0.35 / height, 0.36, 1 - (1.35 + 0.3) / height])
        ax.set_ylim(len(rows) + 0.5, -1.2)
        ymax_text = ax.get_yaxis_transform()
        weights = dict(zip(r.labels, r.weights))
        xs = []
        for y, row in enumerate(rows):
            kind, payload = row
            if kind == "study":
                label, yi, vi = payload
                lo, hi = yi - z * math.sqrt(vi), yi + z * math.sqrt(vi)
                w = weights[label]
                size = 4 + 14 * math.sqrt(w / max(r.weights))
                ax.plot([r.back(lo), r.back(hi)], [y, y], color="black", lw=0.8)
                ax.plot([r.back(yi)], [y], marker="s", markersize=size, color="#1f4e79", mec="#1f4e79")
                xs += [r.back(lo), r.back(hi)]
                _texts(ax, ymax_text, y, label, f"{w:.1f}%", fmt_ci(r, yi, lo, hi))
            elif kind == "header":
                ax.text(-0.9, y, payload, transform=ymax_text, ha="left", va="center", fontweight="bold")
            elif kind in ("pooled", "subtotal"):
                res, label = payload
                _diamond(ax, res, y, "#b22222" if kind == "pooled" else "#555555")
                xs += [res.back(res.ci_lower), res.back(res.ci_upper)]
                weight = "100%" if kind == "pooled" else f"{_subgroup_weight(res, r):.1f}%"
                _texts(ax, ymax_text, y, label, weight, fmt_ci(res, res.estimate, res.ci_lower, res.ci_upper),
                       bold=kind == "pooled")
            elif kind == "pi":
                res = payload
                if res.k >= 2 and res.method != "FE":
                    ax.plot([res.back(res.pi_lower), res.back(res.pi_upper)], [y, y], color="#b22222", lw=2.2,
                            solid_capstyle="butt")
                    xs += [res.back(res.pi_lower), res.back(res.pi_upper)]
                    _texts(ax, ymax_text, y, "Prediction interval", "",
                           f"[{two(res.back(res.pi_lower))}, {two(res.back(res.pi_upper))}]")
            elif kind == "note":
                ax.text(-0.9, y, payload, transform=ymax_text, ha="left", va="center", fontsize=8, style="italic")
        _axes(ax, r, xs, data.favours)
        ax.set_title(data.title, loc="left", x=-0.9, fontsize=11, fontweight="bold", pad=14)
        ax.text(-0.9, -1.0, "Study", transform=ymax_text, ha="left", va="center", fontweight="bold")
        ax.text(1.12, -1.0, "Weight", transform=ymax_text, ha="right", va="center", fontweight="bold")
        ax.text(1.75, -1.0, f"{_short_name(r)} [{r.provenance.level:g}% CI]", transform=ymax_text,
                ha="right", va="center", fontweight="bold")
    return fig


def _layout(data: ForestData) -> list[tuple[str, object]]:
    r = data.result
    studies = list(zip(r.labels, r.yi, r.vi))
    rows: list[tuple[str, object]] = []
    model = "Fixed-effect model" if r.method == "FE" else f"Random-effects model: {r.method}, {_ci_name(r)} CI"
    if data.subgroups:
        for sub in data.subgroups:
            rows.append(("header", sub.level))
            rows += [("study", s) for s, g in zip(studies, data.subgroup_of) if g == sub.level]
            rows.append(("subtotal", (sub.result, f"Subtotal (k = {sub.result.k})")))
            rows.append(("note", heterogeneity_text(sub.result)))
            rows.append(("blank", None))
    else:
        rows += [("study", s) for s in studies]
        rows.append(("blank", None))
    rows.append(("pooled", (r, f"Overall (k = {r.k})")))
    rows.append(("pi", r))
    rows.append(("note", model))
    rows.append(("note", heterogeneity_text(r)))
    if data.subgroup_test is not None:
        t = data.subgroup_test
        rows.append(("note", f"Test for subgroup differences: Q = {t.q:.2f}, df = {t.df}, {_p(t.p)}"))
    return rows


def _subgroup_weight(sub: PoolResult, overall: PoolResult) -> float:
    weights = dict(zip(overall.labels, overall.weights))
    return sum(weights[s] for s in sub.labels)


def _texts(ax, transform, y, label, weight, ci, bold=False):
    weight_font = "bold" if bold else "normal"
    ax.text(-0.9, y, _clip(label), transform=transform, ha="left", va="center", fontweight=weight_font)
    ax.text(1.12, y, weight, transform=transform, ha="right", va="center", fontweight=weight_font)
    ax.text(1.75, y, ci, transform=transform, ha="right", va="center", fontweight=weight_font)


def _clip(label: str, width: int = 44) -> str:
    return label if len(label) <= width else label[: width - 1] + "\u2026"


def _diamond(ax, res: PoolResult, y: float, color: str) -> None:
    lo, est, hi = res.back(res.ci_lower), res.back(res.estimate), res.back(res.ci_upper)
    ax.add_patch(Polygon([(lo, y), (est, y - 0.32), (hi, y), (est, y + 0.32)], closed=True, color=color))


def _axes(ax, r: PoolResult, xs, favours) -> None:
    null = 1.0 if r.is_ratio else 0.0
    finite = [x for x in xs if np.isfinite(x) and (x > 0 or not r.is_ratio)]
    lo, hi = min(finite + [null]), max(finite + [null])
    if r.is_ratio:
        ax.set_xscale("log")
        lo, hi = lo / 1.15, hi * 1.15
        ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10) if lo <= t <= hi]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.minorticks_off()
    else:
        pad = 0.08 * (hi - lo or 1)
        lo, hi = lo - pad, hi + pad
    ax.set_xlim(lo, hi)
    ax.axvline(null, color="grey", lw=0.8, ls="--")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_yticks([])
    ax.set_xlabel(_measure_name(r) + (" (log scale)" if r.is_ratio else ""))
    for text, offset, align in ((f"\u2190 favours {favours[0]}", -4, "right"), (f"favours {favours[1]} \u2192", 4, "left")):
        ax.annotate(text, xy=(null, 0), xycoords=("data", "axes fraction"), xytext=(offset, -38),
                    textcoords="offset points", ha=align, va="top", fontsize=8)


RATIO_TICKS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 5, 10, 20)


def ratio_ticks(low: float, high: float, min_gap: float = 0.09) -> list[float]:
    """Ticks of a log ratio axis from ``low`` to ``high`` that never crowd each other: 1 always, then the
    ladder's values in range, each at least ``min_gap`` of the axis' log span from those kept."""
    span = np.log(high) - np.log(low)
    kept = [1.0] if low <= 1 <= high else []
    for tick in sorted((t for t in RATIO_TICKS if low <= t <= high), key=lambda t: abs(np.log(t))):
        if all(abs(np.log(tick) - np.log(k)) >= min_gap * span for k in kept):
            kept.append(float(tick))
    return sorted(kept)


def _measure_name(r: PoolResult) -> str:
    return {"HR": "Hazard ratio", "RR": "Risk ratio", "OR": "Odds ratio", "SMD": "Standardised mean difference",
            "MD": "Mean difference", "RD": "Risk difference", "GEN": "Effect"}[r.measure]


def _short_name(r: PoolResult) -> str:
    return "Effect" if r.measure == "GEN" else r.measure


def _ci_name(r: PoolResult) -> str:
    return "Knapp-Hartung" if r.ci_method == "knha" else "z"


def cumulative_plot(title: str, steps: list[tuple[str, PoolResult]]) -> plt.Figure:
    """Cumulative forest plot: the pooled estimate as each study is added in publication order.

    Drawn by ``forestplot`` (rows, CIs, left and right annotations); we fix its log-axis ticks.
    """
    first = steps[0][1]
    frame = pd.DataFrame({
        "label": [f"+ {_clip(label, 40)}" for label, _ in steps],
        "est": [res.back(res.estimate) for _, res in steps],
        "lo": [res.back(res.ci_lower) for _, res in steps],
        "hi": [res.back(res.ci_upper) for _, res in steps],
        "k": [f"{res.k}" for _, res in steps],
        "i2": [f"{res.i2:.0f}%" if res.k > 1 else "" for _, res in steps],
    })
    height = 1.4 + 0.32 * len(steps)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(10, height), dpi=DPI)
        ax = fig.add_axes([0.5, 0.7 / height, 0.35, 1 - 1.2 / height])
        forestplot.forestplot(frame, estimate="est", ll="lo", hl="hi", varlabel="label",
                              annote=["k", "est_ci"], annoteheaders=["k", "Pooled (95% CI)"],
                              rightannote=["i2"], right_annoteheaders=["I\u00b2"],
                              logscale=first.is_ratio, xlabel=_measure_name(first) + " (cumulative)",
                              decimal_precision=2, ax=ax)
        null = 1.0 if first.is_ratio else 0.0
        ax.axvline(null, color="grey", lw=0.8, ls="--")
        if first.is_ratio:
            lo = min(frame["lo"].min(), null) / 1.1
            hi = max(frame["hi"].max(), null) * 1.1
            ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10) if lo <= t <= hi]
            ax.set_xlim(lo, hi)
            ax.set_xticks(ticks)
            ax.set_xticklabels([f"{t:g}" for t in ticks])
            ax.minorticks_off()
        fig.suptitle(title, x=0.02, ha="left", fontsize=11, fontweight="bold")
    return fig


def funnel_plot(title: str, result: PoolResult, filled_yi=(), filled_vi=()) -> plt.Figure:
    """Contour-enhanced funnel plot (Peters et al. 2008, J Clin Epidemiol 61:991).

    Effects against their standard errors (axis inverted); shaded contours mark where a single
    study would be significant at p < 0.10, 0.05 and 0.01 against no effect; the pooled estimate
    with its pseudo 95% limits; studies added by trim-and-fill as open circles.
    """
    yi, se = np.array(result.yi), np.sqrt(np.array(result.vi))
    fy, fse = np.array(filled_yi, dtype=float), np.sqrt(np.array(filled_vi, dtype=float))
    top = 1.08 * max(se.max(), fse.max() if fse.size else 0.0)
    grid = np.array([0.0, top])
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.5, 5), dpi=DPI)
        span = max(np.abs(yi).max(), np.abs(fy).max() if fy.size else 0.0, 2.6 * top) * 1.05
        ax.fill_betweenx(grid, -span, span, color="#e6e6e6", lw=0, label="p < 0.01")
        for z, colour, label in ((2.5758, "#bfbfbf", "0.01 < p < 0.05"), (1.9600, "#8c8c8c", "0.05 < p < 0.10"),
                                 (1.6449, "#ffffff", "p > 0.10")):
            ax.fill_betweenx(grid, -z * grid, z * grid, color=colour, label=label, lw=0)
        est = result.estimate
        ax.plot([est, est - 1.96 * top], [0, top], color="black", lw=0.7, ls="--")
        ax.plot([est, est + 1.96 * top], [0, top], color="black", lw=0.7, ls="--")
        ax.axvline(est, color="#b22222", lw=1.2, label="pooled estimate")
        ax.scatter(yi, se, s=28, color="#1f4e79", zorder=3, label="studies")
        if fy.size:
            ax.scatter(fy, fse, s=28, facecolors="white", edgecolors="#1f4e79", zorder=3,
                       label="added by trim-and-fill")
        ax.set_ylim(top, 0)
        ax.set_xlim(min(yi.min(), est - 1.96 * top, fy.min() if fy.size else 0) - 0.05 * span,
                    max(yi.max(), est + 1.96 * top, fy.max() if fy.size else 0) + 0.05 * span)
        ax.set_ylabel("Standard error")
        ax.set_xlabel(("log " if result.is_ratio else "") + _measure_name(result))
        ax.legend(loc="lower right", fontsize=7, frameon=True)
        ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    return fig


def warm_up() -> None:
    """Draw a tiny figure so that fonts and caches are loaded (once per process)."""
    fig = plt.figure(figsize=(1, 1))
    fig.text(0.5, 0.5, "\u2190 I\u00b2 0.5", fontweight="bold")
    figure_bytes(fig)


def figure_bytes(fig: plt.Figure, tight: bool = False, formats: tuple[str, ...] = ("png", "svg")) -> dict[str, bytes]:
    """PNG and/or SVG bytes of a figure, free of dates and versions.

    ``tight`` crops to the drawn content (measured once, for every format).
    """
    out = {}
    metadata_of = {"png": PNG_METADATA, "svg": SVG_METADATA}
    with plt.rc_context(STYLE):
        box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1) if tight else None
        for fmt, metadata in ((fmt, metadata_of[fmt]) for fmt in formats):
            buffer = io.BytesIO()
            fig.savefig(buffer, format=fmt, metadata=metadata, dpi=DPI, bbox_inches=box,
                        **({"pil_kwargs": PNG_COMPRESSION} if fmt == "png" else {}))
            out[fmt] = buffer.getvalue()
    plt.close(fig)
    return out

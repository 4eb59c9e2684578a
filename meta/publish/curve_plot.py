"""The dose-response curve: pooled RR with its 95% band on a log scale against dose, the referent line,
the knots, a dashed curve beyond the last knot (where few studies inform it), a rug of the studies'
doses and marked doses (e.g. 8.75 mMET-h/week = 150 min/week of moderate activity)."""

from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.ticker import FixedLocator, NullLocator

from meta.publish.plots import DPI, STYLE, ratio_ticks

CURVE, BAND, RUG = "#1f4e79", "#c6d9ec", "#555555"


def curve_plot(result, title: str, dose_label: str, marks: dict[float, str]):
    """A matplotlib Figure of ``result`` (a ``meta.sheets.doses.DoseFit``)."""
    fit, arrays = result.fit, result.arrays
    doses = arrays.dose[np.isfinite(arrays.dose)]
    grid = np.linspace(float(doses.min()), float(doses.max()), 400)
    table = result.curve(grid)
    last_knot = float(fit.knots[-1]) if fit.knots is not None else float(doses.max())
    inside = grid <= last_knot
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(7.2, 4.6), dpi=DPI)
        ax = fig.add_axes([0.11, 0.2, 0.85, 0.66])
        ax.fill_between(grid, table.ci_lower, table.ci_upper, color=BAND, lw=0, label="95% CI")
        ax.plot(grid[inside], table.estimate[inside], color=CURVE, lw=2, label="pooled relative risk")
        if (~inside).any():
            ax.plot(grid[~inside], table.estimate[~inside], color=CURVE, lw=2, ls="--",
                    label="beyond the last knot (few studies)")
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_yscale("log")
        low = float(min(table.ci_lower.min(), 1.0)) * 0.95
        high = float(max(table.ci_upper.max(), 1.0)) * 1.05
        ax.set_ylim(low, high)
        ticks = ratio_ticks(low, high)
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_yticklabels([f"{t:g}" for t in ticks])
        for knot in (fit.knots if fit.knots is not None else ()):
            ax.axvline(float(knot), color="#999999", lw=0.7, ls=":")
        ax.plot(doses, np.full(doses.size, low * 1.01), ls="none", marker="|", markersize=8, color=RUG,
                alpha=0.6, label="studies' doses")
        for dose, text in marks.items():
            ax.axvline(dose, color="#b22222", lw=1.0, ls="-.")
            ax.annotate(text, (dose, high), xytext=(3, -3), textcoords="offset points", ha="left", va="top",
                        fontsize=8, color="#b22222")
        ax.set_xlim(float(doses.min()), float(doses.max()))
        ax.set_xlabel(dose_label)
        ax.set_ylabel(f"Relative risk (vs {result.options.reference:g})")
        for side in ("right", "top"):
            ax.spines[side].set_visible(False)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, frameon=False, fontsize=8)
        knots = "" if fit.knots is None else ", knots " + ", ".join(f"{k:.1f}" for k in fit.knots)
        fig.suptitle(title, x=0.02, y=0.97, ha="left", fontsize=11, fontweight="bold")
        fig.text(0.02, 0.9, f"{fit.k} studies; {fit.model}{knots}; {fit.method}, {fit.covariance_used} covariance; "
                 f"I\u00b2 = {fit.i2:.0f}%", ha="left", fontsize=8, style="italic")
    return fig

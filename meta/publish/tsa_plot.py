"""The trial sequential analysis plot: the cumulative Z-curve against its monitoring boundaries
(Wetterslev et al. 2008; the numbers come from ``meta.stats.tsa``)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter

from meta.publish.plots import DPI, STYLE
from meta.stats.distributions import norm_isf
from meta.stats.tsa import TSAResult


def tsa_plot(result: TSAResult, title: str):
    """The cumulative Z-curve with the monitoring boundaries, the conventional +-z_{alpha/2} lines
    and the required information size; a matplotlib Figure (Agg), drawn in ``plots.STYLE``."""
    r = result
    x = np.array([p.information for p in r.points])
    z = np.array([p.z for p in r.points])
    bound = np.array([p.boundary for p in r.points])
    top = max(5.0, min(10.0, 1.15 * float(np.max(np.abs(z)))))
    x_max = 1.08 * max(r.required, float(x[-1]))
    conventional = float(norm_isf(r.alpha / 2))
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(10, 5.4), dpi=DPI)
        ax = fig.add_axes([0.08, 0.13, 0.6, 0.7])
        shown = np.minimum(bound, 10 * top)  # infinite or very high boundaries leave the axes upwards
        for sign in (1, -1):
            ax.plot(x, sign * shown, color="#b22222", lw=1.6, marker="_", markersize=8,
                    label="monitoring boundary" if sign == 1 else None)
            ax.axhline(sign * conventional, color="grey", lw=0.9, ls="--",
                       label=f"conventional |z| = {conventional:.2f}" if sign == 1 else None)
        if r.fraction < 1:  # where the boundary ends if the next update reaches the RIS
            for sign in (1, -1):
                ax.plot([x[-1], r.required], [sign * shown[-1], sign * r.final_boundary], color="#b22222", lw=1.2,
                        ls=":", marker="_", markersize=8,
                        label="boundary if the next update reaches the RIS" if sign == 1 else None)
        ax.axhline(0, color="black", lw=0.6)
        ax.plot(x, z, color="#1f4e79", lw=1.8, marker="o", markersize=4, label="cumulative z", zorder=3)
        crossed = [p for p in r.points if p.label == r.crossed_at]
        if crossed:
            ax.plot([crossed[0].information], [crossed[0].z], marker="o", markersize=10, mfc="none", mec="#b22222",
                    mew=1.5, ls="none", label=f"boundary first crossed ({r.crossed_at})", zorder=4)
        last = -math.inf
        for i, p in enumerate(r.points):  # label the updates that have room for it
            if p.information - last >= 0.05 * x_max or i == len(r.points) - 1:
                ax.annotate(p.label, (p.information, p.z), xytext=(0, -11 if p.z >= 0 else 5),
                            textcoords="offset points", ha="center", fontsize=7, color="#1f4e79")
                last = p.information
        ax.axvline(r.required, color="#555555", lw=1.2, ls=":")
        ax.annotate("RIS", (r.required, 0.98), xycoords=("data", "axes fraction"), xytext=(-4, 0),
                    textcoords="offset points", ha="right", va="top", fontsize=8)
        ax.set_xlim(0, x_max)
        ax.set_ylim(-top, top)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_xlabel("Cumulative participants" if r.information == "participants"
                      else "Cumulative information (sum of 1/variance)")
        ax.set_ylabel("Cumulative z" if r.z_test == "wald" else "Cumulative z (Knapp-Hartung t as z)")
        for side in ("right", "top"):
            ax.spines[side].set_visible(False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.03, 1.0), frameon=False, fontsize=8)
        fig.text(0.71, 0.55, _settings_text(r), ha="left", va="top", fontsize=8, linespacing=1.5)
        fig.suptitle(title, x=0.02, y=0.97, ha="left", fontsize=11, fontweight="bold")
        fig.text(0.02, 0.89, f"Trial sequential analysis: {r.verdict}", ha="left", fontsize=9, style="italic")
    return fig


def _amount(value: float, information: str) -> str:
    return f"{value:,.0f} participants" if information == "participants" else f"{value:,.1f}"


def _settings_text(r: TSAResult) -> str:
    model = "fixed effect" if r.method == "FE" else f"random effects, {r.method}"
    d2 = f"D\u00b2 = {100 * r.diversity:.0f}%" + (" (anticipated)" if r.diversity_given else "")
    return "\n".join(["Anticipated effect:", *_wrap(r.anticipated.describe()),
                      f"alpha {r.alpha:g} (two-sided), power {r.power:g}", f"Model: {model}", d2,
                      "Required information size (RIS):", f"  {_amount(r.required, r.information)}",
                      f"Accrued: {100 * r.fraction:.0f}% of the RIS"])


def _wrap(text: str, width: int = 34) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append("  " + line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ["  " + line]

"""``meta export ANALYSIS --to r|csv``: one analysis for another tool.

``r`` writes a self-contained R script: the spec's rows as the sheet holds them (inline), effect
sizes by ``metafor::escalc`` with the toolkit's conventions (``add = 1/2, to = "only0"``,
``drop00`` as the spec's zero-cell rule, MD ``vtype = "HO"`` for the pooled SD), ratio CIs turned
into log estimates and variances as ``effects.py`` does, and ``metafor::rma`` with the spec's
estimator, test and level (and each subgroup). It prints metafor's results and then the numbers as
``name = value`` lines. ``csv`` writes metafor-style data: study, year, (subgroup), yi, vi.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd

from meta._version import __version__
from meta.errors import SheetError, SpecError
from meta.sheets.load import check_effect_table, load_sheet
from meta.sheets.specs import Spec, has_table, load_spec
from meta.stats.effects import (
    DIFFERENCE_MEASURES,
    EffectSizes,
    compute_effects,
    row_groups,
)
from meta.stats.options import RATIO_MEASURES

FORMATS = ("r", "csv")
R_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
ESCALC = {  # group -> (escalc arguments, sheet columns)
    "binary": ("ai = events_treat, n1i = n_treat, ci = events_ctrl, n2i = n_ctrl",
               ("events_treat", "n_treat", "events_ctrl", "n_ctrl")),
    "continuous": ("m1i = mean_treat, sd1i = sd_treat, n1i = n_treat, m2i = mean_ctrl, sd2i = sd_ctrl, n2i = n_ctrl",
                   ("mean_treat", "sd_treat", "n_treat", "mean_ctrl", "sd_ctrl", "n_ctrl")),
    "standardised": ("di = d, n1i = n_treat, n2i = n_ctrl", ("d", "n_treat", "n_ctrl")),
}


def load_analysis(root: Path, name: str) -> tuple[Spec, pd.DataFrame, pd.DataFrame, EffectSizes]:
    """The spec ``name``, its selected rows (text and typed) and their effect sizes."""
    root = Path(root)
    path = root / "analyses" / f"{name}.toml"
    if not path.exists():
        names = sorted(p.stem for p in (root / "analyses").glob("*.toml"))
        raise SpecError(f"no analysis '{name}' in {root / 'analyses'}; analyses: {', '.join(names) or 'none'}")
    if has_table(path, "doseresponse"):
        raise SpecError(f"analysis '{name}' is a dose-response analysis; meta export writes pooled analyses "
                        "(its dose-level rows are the sheet the spec names, ready for R's dosresmeta)")
    spec = load_spec(path, root)
    frame, problems = load_sheet(spec.sheet)
    if problems:
        raise SheetError(problems)
    missing = [c for c in [*spec.filters, *([spec.subgroup] if spec.subgroup else [])] if c not in frame.columns]
    if missing:
        raise SpecError(f"analyses/{name}.toml: the sheet has no column {', '.join(missing)}")
    chosen = spec.select(frame)
    typed, problems = check_effect_table(chosen, str(spec.sheet), spec.effect_options.measure)
    if problems:
        raise SheetError(problems)
    return spec, chosen, typed, compute_effects(typed, spec.effect_options)


def export_analysis(root: Path, name: str, to: str) -> str:
    """The text of analysis ``name`` exported to ``to`` (one of FORMATS)."""
    spec, chosen, typed, effects = load_analysis(root, name)
    return r_script(spec, chosen, typed, effects) if to == "r" else yi_vi_csv(spec, chosen, effects)


def yi_vi_csv(spec: Spec, chosen: pd.DataFrame, effects: EffectSizes) -> str:
    """metafor-style data of the studies pooled: study, year, (subgroup), yi, vi."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["study", "year", *(["subgroup"] if spec.subgroup else []), "yi", "vi"])
    for label, year, row, yi, vi in zip(effects.labels, effects.years, effects.rows, effects.yi, effects.vi):
        level = [_text(chosen.loc[row, spec.subgroup])] if spec.subgroup else []
        writer.writerow([label, _text(year), *level, repr(float(yi)), repr(float(vi))])
    return out.getvalue()


def r_script(spec: Spec, chosen: pd.DataFrame, typed: pd.DataFrame, effects: EffectSizes) -> str:
    """A self-contained R script that pools the analysis with metafor and prints the numbers."""
    e, p = spec.effect_options, spec.pool_options
    ratio = e.measure in RATIO_MEASURES
    groups: dict[str, list] = {}
    for (number, _), present in zip(typed.iterrows(), row_groups(typed)):
        groups.setdefault(present[0], []).append(number)
    test = "knha" if p.ci == "knha" and effects.k > 1 else "z"
    lines = [
        f"# Analysis '{spec.name}' ({spec.title}) as meta {__version__} pools it, re-done with metafor.",
        f"# Written by `meta export {spec.name} --to r`; the rows of {spec.sheet.name} the spec selects are inline.",
        f"# Measure {e.measure}, estimator {p.method}, {test} test, level {p.level:g}%; "
        + ("estimates on the log scale." if ratio else "estimates on the measure's scale."),
        "suppressPackageStartupMessages(library(metafor))", "",
    ]
    if p.ci == "knha" and test == "z":
        lines += ["# k = 1: meta gives the z interval of the single study (Knapp-Hartung needs k >= 2).", ""]
    parts = []
    for group, numbers in groups.items():
        rows = chosen.loc[numbers]
        lines += _group_lines(group, rows, spec, e)
        parts.append(f"es_{group}")
    lines += [f"dat <- rbind({', '.join(parts)})", "dat <- dat[order(dat$row), ]"]
    if "binary" in groups and e.zero_cells == "drop" and e.measure in ("RR", "OR"):
        lines.append("dat <- dat[!is.na(dat$yi), ]  # double-zero studies left out (drop00), as the spec says")
    lines += ["",
              f'res <- rma(yi, vi, data = dat, method = "{p.method}", test = "{test}", level = {p.level!r}, '
              "slab = study)", "print(res)"]
    if ratio:
        lines.append("print(predict(res, transf = exp))")
    lines += ["", "numbers <- function(r, prefix = '') {",
              "  pred <- predict(r)",
              "  values <- c(k = r$k, estimate = r$b[1], se = r$se, ci_lower = r$ci.lb, ci_upper = r$ci.ub, "
              "p = r$pval, tau2 = r$tau2, i2 = r$I2, h2 = r$H2, q = r$QE, q_p = r$QEp, "
              "pi_lower = pred$pi.lb, pi_upper = pred$pi.ub)",
              "  if (is.null(pred$pi.lb)) values[c('pi_lower', 'pi_upper')] <- c(pred$ci.lb, pred$ci.ub)",
              "  cat(sprintf('%s%s = %.17g\\n', prefix, names(values), values), sep = '')",
              "}", "cat('\\n')", "numbers(res)"]
    if ratio:
        lines.append(f"cat(sprintf('{e.measure} = %.4f (%.4f to %.4f)\\n', exp(res$b[1]), exp(res$ci.lb), "
                     "exp(res$ci.ub)))")
    if spec.subgroup:
        lines += ["", f"# Subgroups by '{spec.subgroup}': each level pooled with the same model."]
        lines += ["for (level in sort(unique(dat$subgroup))) {",
                  "  part <- dat[dat$subgroup == level, ]",
                  f'  sub <- rma(yi, vi, data = part, method = "{p.method}", '
                  f'test = if (nrow(part) > 1) "{test}" else "z", level = {p.level!r}, slab = study)',
                  "  numbers(sub, prefix = paste0('subgroup[', level, '] '))", "}"]
    return "\n".join(lines) + "\n"


def _group_lines(group: str, rows: pd.DataFrame, spec: Spec, e) -> list[str]:
    columns = {"row": [str(n) for n in rows.index], "study": [_r_string(s) for s in rows["study"]]}
    columns["subgroup"] = ([_r_string(_text(v) or "not reported") for v in rows[spec.subgroup]]
                           if spec.subgroup else ['""'] * len(rows))
    if group in ESCALC:
        arguments, names = ESCALC[group]
        for c in names:
            if group == "binary" and c.startswith("n_"):  # an arm given as events + non-events: n as their sum
                columns[c] = [_arm_total(row, c.removeprefix("n_")) for _, row in rows.iterrows()]
            else:
                columns[c] = [_r_number(v) for v in rows[c]]
        drop00 = "TRUE" if e.zero_cells == "drop" and e.measure in ("RR", "OR") else "FALSE"
        vtype = "HO" if e.measure == "MD" and e.md_variance == "pooled" else "LS"
        options = (f'add = 1/2, to = "only0", drop00 = {drop00}' if group == "binary" else f'vtype = "{vtype}"')
        measure = "OR2DL" if group == "binary" and e.measure == "SMD" else e.measure  # odds ratios as SMDs
        compute = [f"es <- escalc(measure = \"{measure}\", {arguments}, data = {group}, {options})"]
    elif group == "interval":
        columns.update({c: [_r_number(v) for v in rows[c]] for c in ("estimate", "ci_lower", "ci_upper")})
        levels = rows["ci_level"] if "ci_level" in rows.columns else pd.Series(index=rows.index, dtype=object)
        columns["ci_level"] = [_r_number(v) if pd.notna(v) else "95" for v in levels]
        if e.measure in DIFFERENCE_MEASURES:
            compute = ["es <- data.frame(yi = interval$estimate,",
                       "                 vi = ((interval$ci_upper - interval$ci_lower) / "
                       "(2 * qnorm(0.5 + interval$ci_level / 200)))^2)  # Cochrane Handbook 6.5.2.3"]
        else:
            compute = ["es <- data.frame(yi = log(interval$estimate),",
                       "                 vi = ((log(interval$ci_upper) - log(interval$ci_lower)) / "
                       "(2 * qnorm(0.5 + interval$ci_level / 200)))^2)  # Altman & Bland 2011"]
    else:
        columns["yi"] = [_r_number(v) for v in rows["yi"]]
        vi = rows["vi"] if "vi" in rows.columns else pd.Series(index=rows.index, dtype=object)
        sei = rows["sei"] if "sei" in rows.columns else pd.Series(index=rows.index, dtype=object)
        columns["vi"] = [_r_number(v) if pd.notna(v) else f"({_r_number(s)})^2" for v, s in zip(vi, sei)]
        compute = ["es <- precomputed[, c(\"yi\", \"vi\")]  # vi, or sei^2 where the sheet gives the SE"]
    body = ",\n".join(f"  {name} = c({', '.join(values)})" for name, values in columns.items())
    return [f"# {group} rows", f"{group} <- data.frame(\n{body}\n)", *compute,
            f"es_{group} <- data.frame(row = {group}$row, study = {group}$study, subgroup = {group}$subgroup, "
            "yi = as.numeric(es$yi), vi = as.numeric(es$vi))", ""]


def _arm_total(row, arm: str) -> str:
    n = row.get(f"n_{arm}")
    if pd.notna(n):
        return _r_number(n)
    return f"{_r_number(row[f'events_{arm}'])} + {_r_number(row[f'nonevents_{arm}'])}"


def _r_number(value) -> str:
    """A sheet cell as an R number literal: its own text where R reads it as the same double."""
    text = str(value).strip()
    return text if R_NUMBER.fullmatch(text) else repr(float(text))


def _r_string(value) -> str:
    """An R string literal; non-ASCII characters as \\u escapes so any locale reads the script."""
    out = []
    for char in str(value):
        if char in '\\"':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif ord(char) < 32 or ord(char) > 126:
            out.append(f"\\U{{{ord(char):08x}}}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)

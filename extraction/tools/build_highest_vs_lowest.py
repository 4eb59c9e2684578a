"""Highest-vs-reference rows of Garcia et al. 2023's 19 cancer analyses, from the newest CSV.

For every study (and sex) of the dose-level sheet built by ``build_dose_levels.py``: the most
adjusted estimate of the highest-dose category against the reference category (estimate 1, no CI),
in the columns of ``extraction/risk/risk_cohorts.csv``. Rows already in that sheet keep their
study_id, study, year, cohort, second reading and notes when their numbers are unchanged; the
comparison with the quoted lines of the older version (commit edfd703) is written to
``HVL_DIFFS.md`` by ``compare_existing``.

Usage::

    .venv/bin/python extraction/tools/build_highest_vs_lowest.py [--out DIR]
"""
from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import build_dose_levels as dl
import pandas as pd

RISK_SHEET = dl.ROOT / "extraction/risk/risk_cohorts.csv"
CONTRAST_LOWEST = "highest vs reference (lowest) category of leisure-time physical activity"
CONTRAST_REFERENCE = "highest vs reference category of leisure-time physical activity"
NUMBER_FIELDS = ("estimate", "ci_lower", "ci_upper", "n_total", "events_total", "dose_met_h_week",
                 "follow_up_years")


def csv_fields(line: str) -> list[str]:
    """Cells of one CSV line, without the trailing empty cell of the newest version."""
    cells = next(csv.reader([line]))
    return cells[:-1] if cells and cells[-1] == "" else cells


def study_pairs(sheet: pd.DataFrame) -> list[tuple[pd.Series, pd.Series, bool]]:
    """(reference row, highest-dose row, whether the reference is the lowest dose) of every
    study of every analysis; a study without a reference row (estimate 1, no CI) is left out.
    Where two categories share the highest dose, the first in file order is taken."""
    pairs = []
    for _, rows in sheet.groupby(["outcome_key", "study"], sort=False):
        reference = rows[rows["referent"] == "yes"]
        others = rows[rows["referent"] != "yes"]
        if len(reference) != 1 or others.empty:
            continue
        dose = pd.to_numeric(others["dose"])
        lowest = float(reference.iloc[0]["dose"]) <= dose.min()
        pairs.append((reference.iloc[0], others.loc[dose.idxmax()], lowest))
    return pairs


def hvl_row(reference: pd.Series, highest: pd.Series, lowest: bool, raw: pd.DataFrame) -> dict[str, str]:
    """One risk_cohorts row from the two category rows of the dose-level sheet."""
    ref_cells = raw.loc[raw["_text"] == reference["quote"]].iloc[0]
    high_cells = raw.loc[raw["_text"] == highest["quote"]].iloc[0]
    return {
        "study_id": highest["study_id"], "study": highest["study"], "year": highest["year"],
        "cohort": highest["cohort"], "design": "cohort", "population": highest["population"],
        "cancer_site": highest["cancer_site"], "outcome": highest["outcome"], "sex": highest["sex"],
        "contrast": CONTRAST_LOWEST if lowest else CONTRAST_REFERENCE,
        "adjusted_for": highest["adjusted_for"], "measure": highest["measure"],
        "estimate": highest["estimate"], "ci_lower": highest["ci_lower"], "ci_upper": highest["ci_upper"],
        "n_total": high_cells["n_baseline"].strip(), "events_total": high_cells["total_cases"].strip(),
        "dose": (f"highest category of leisure-time PA: marginal {high_cells['m_met_h_wk']} MET-h/week "
                 f"(alternative estimate m_met_h_wk_alt {high_cells['m_met_h_wk_alt']}); reference "
                 f"{'(lowest) ' if lowest else ''}category {ref_cells['m_met_h_wk']} MET-h/week"),
        "dose_met_h_week": high_cells["m_met_h_wk"].strip(),
        "follow_up_years": highest["follow_up_years"],
        "source_location": (f"data/R_variables_March23.csv (commit {dl.FILE_COMMIT}; repository head "
                            f"{dl.HEAD_COMMIT}), ref_number {ref_cells['ref_number']}, line "
                            f"{ref_cells['_line']} (line_id {ref_cells['line_id']}, reference) and line "
                            f"{high_cells['_line']} (line_id {high_cells['line_id']}, highest category)"),
        "source_url": dl.SOURCE_URL,
        "quote": f"{reference['quote']} || {highest['quote']}",
        "extracted_by": dl.EXTRACTED_BY, "extracted_on": dl.EXTRACTED_ON, "checked_by": "", "checked_on": "",
        "notes": (f"Paper's main analysis '{highest['outcome_key']}' (overall=1 rows, "
                  f"outcome_type={high_cells['outcome_type'].strip()}, effect_measure="
                  f"{high_cells['effect_measure']}); estimate = most_adj columns of the highest-dose line."
                  + _tie_note(highest, raw)),
    }


def _tie_note(highest: pd.Series, raw: pd.DataFrame) -> str:
    """Say so where another category of the same study has the same (highest) dose."""
    cells = raw.loc[raw["_text"] == highest["quote"]].iloc[0]
    same = raw[(raw["ref_number"] == cells["ref_number"]) & (raw["outcome"] == cells["outcome"])
               & (raw["overall"] == cells["overall"]) & (raw["sex"] == cells["sex"])
               & (raw["outcome_type"] == cells["outcome_type"]) & (raw["m_met_h_wk"] == cells["m_met_h_wk"])
               & (raw["_line"] != cells["_line"])]
    if same.empty:
        return ""
    others = ", ".join(f"line {r['_line']} (line_id {r['line_id']}, HR {r['most_adj_effect']})" for _, r in same.iterrows())
    return (f" Another category has the same marginal dose: {others}; the first in file order "
            f"(line_id {cells['line_id']}) is taken.")


def existing_rows() -> pd.DataFrame:
    """risk_cohorts.csv with the ref_number and the two quoted CSV lines of each row."""
    old = pd.read_csv(RISK_SHEET, dtype=str, keep_default_na=False)
    old["ref_number"] = old["source_location"].str.extract(r"ref_number (\d+)")[0]
    parts = old["quote"].str.split(" \\|\\| ")
    old["ref_line"], old["high_line"] = parts.str[0], parts.str[1]
    old["extra_quote"] = parts.str[2:].str.join(" || ")
    return old


def merge_existing(new: pd.DataFrame, old: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Carry the existing rows' identity and second reading over where nothing changed."""
    report = []
    new = new.copy()
    key = ["ref_number", "cancer_site", "outcome", "sex"]
    old_by_key = {tuple(r[k] for k in key): r for _, r in old.iterrows()}
    for i, row in new.iterrows():
        match = old_by_key.pop(tuple(row[k] for k in key), None)
        if match is None:
            continue
        entry = _compare(row, match)
        report.append(entry)
        if not entry["changed_lines"]:
            _keep_row(new, i, row, match)
        elif not entry["changed_numbers"]:
            _keep_row(new, i, row, match)
            new.loc[i, ["checked_by", "checked_on"]] = ""
            new.loc[i, "notes"] = f"{match['notes']} {_change_note(entry)}"
        else:
            for col in ("study_id", "study", "year", "cohort"):
                new.loc[i, col] = match[col]
            _carry_sources(new, i, row, match)
            new.loc[i, "notes"] = f"{row['notes']} {_change_note(entry)}"
    for left in old_by_key.values():
        report.append({"old": left, "new": None})
    return new, report


def _keep_row(new: pd.DataFrame, i: int, row: pd.Series, old: pd.Series) -> None:
    """Quoted lines unchanged: the old row stays as it was read and checked; only its location
    and quote move to the newest version (plus any other source the old row also quoted)."""
    for col in new.columns.intersection(old.index):
        if col not in ("source_location", "source_url", "quote", "ref_line", "high_line", "ref_number"):
            new.loc[i, col] = old[col]
    _carry_sources(new, i, row, old)
    if old["extra_quote"]:
        new.loc[i, "quote"] = f"{row['quote']} || {old['extra_quote']}"


def _carry_sources(new: pd.DataFrame, i: int, row: pd.Series, old: pd.Series) -> None:
    """Keep the other sources (year, cohort, a corrected limit) the old row cited besides the CSV."""
    extra_location = old["source_location"].split(" || ", 1)[1:] or \
        old["source_location"].split("; ", 1)[1:]
    if extra_location:
        new.loc[i, "source_location"] = f"{row['source_location']} || {extra_location[0]}"
    extra_url = old["source_url"].split(" || ", 1)[1:]
    if extra_url:
        new.loc[i, "source_url"] = f"{dl.SOURCE_URL} || {extra_url[0]}"


def _change_note(entry: dict) -> str:
    """One sentence saying which cells of the quoted lines changed since commit edfd703."""
    parts = [f"{label} line {field} {old!r} -> {new!r}"
             for label, _, _, diffs in entry["changed_lines"] for field, old, new in diffs]
    return ("Changed since the version first quoted (edfd703): " + "; ".join(parts)
            + "; needs a new second reading.")


def _compare(new: pd.Series, old: pd.Series) -> dict:
    """Which quoted lines and which numbers differ between the old row and the new one."""
    changed_lines = []
    for label, old_line, new_line in [("reference", old["ref_line"], new["ref_line"]),
                                      ("highest", old["high_line"], new["high_line"])]:
        a, b = csv_fields(old_line), csv_fields(new_line)
        if a != b:
            changed_lines.append((label, old_line, new_line, _field_diffs(a, b)))
    changed_numbers = [(f, old[f], new[f]) for f in NUMBER_FIELDS if not _same_number(old[f], new[f])]
    return {"old": old, "new": new, "changed_lines": changed_lines, "changed_numbers": changed_numbers}


def _field_diffs(a: list[str], b: list[str]) -> list[tuple[str, str, str]]:
    """(column, old cell, new cell) of every cell that differs."""
    header = _csv_header()
    width = max(len(a), len(b))
    a, b = a + [""] * (width - len(a)), b + [""] * (width - len(b))
    return [(header[j] if j < len(header) else str(j), a[j], b[j]) for j in range(width) if a[j] != b[j]]


def _same_number(a: str, b: str) -> bool:
    x, y = dl.r_numeric(a), dl.r_numeric(b)
    return (math.isnan(x) and math.isnan(y)) or x == y


def _csv_header() -> list[str]:
    """Column names of R_variables_March23.csv."""
    with dl.DEFAULT_CSV.open(encoding="latin-1") as handle:
        return next(csv.reader(handle))


def build(out_dir: Path = dl.ROOT / "extraction/_staging") -> tuple[Path, list[dict]]:
    """Write ``risk_cohorts_new.csv``; return its path and the comparison with the old rows."""
    raw = dl.read_csv_lines(dl.DEFAULT_CSV)
    sheet = pd.DataFrame(dl.sheet_rows(raw, dl.known_studies()))
    new = pd.DataFrame([hvl_row(r, h, low, raw) for r, h, low in study_pairs(sheet)])
    new["ref_number"] = new["source_location"].str.extract(r"ref_number (\d+)")[0]
    parts = new["quote"].str.split(" \\|\\| ")
    new["ref_line"], new["high_line"] = parts.str[0], parts.str[1]
    merged, report = merge_existing(new, existing_rows())
    columns = list(pd.read_csv(RISK_SHEET, nrows=0).columns)
    path = out_dir / "risk_cohorts_new.csv"
    dl.write_csv(path, merged.reindex(columns=columns).astype(object).fillna("").to_dict("records"), columns)
    write_report(out_dir / "HVL_DIFFS.md", report, sheet, merged)
    return path, report


def dropped_reason(old: pd.Series, sheet: pd.DataFrame) -> str:
    """Why an existing row has no counterpart among the paper's main-analysis studies."""
    cells = csv_fields(old["high_line"])
    overall, outcome_type = cells[8], cells[9].strip()
    used = sheet[(sheet["source_location"].str.contains(f"ref_number {old['ref_number']},", regex=False))
                 & (sheet["cancer_site"] == old["cancer_site"]) & (sheet["outcome"] == old["outcome"])]
    if used.empty:
        return (f"quoted lines have overall={overall}, outcome_type={outcome_type}; the paper's main "
                "analysis of this site has no row of this ref_number")
    return (f"quoted lines have overall={overall} (sex-specific stratum); the paper's main analysis uses "
            f"this ref_number's overall=1 rows instead (sex {used['sex'].iloc[0]})")


def write_report(path: Path, report: list[dict], sheet: pd.DataFrame, new: pd.DataFrame) -> None:
    """HVL_DIFFS.md: what changed in the quoted lines, which rows were kept, left out or added."""
    kept = [e for e in report if e["new"] is not None and not e["changed_lines"]]
    changed = [e for e in report if e["new"] is not None and e["changed_lines"]]
    dropped = [e["old"] for e in report if e["new"] is None]
    lines = [
        "# Highest-vs-lowest rows refreshed from the newest R_variables_March23.csv",
        "",
        (f"Written by `extraction/tools/build_highest_vs_lowest.py` (rows: `risk_cohorts_new.csv`, {len(new)} "
         "rows: one per study and sex of the paper's 19 main cancer analyses, built from `dose_levels.csv`)."),
        (f"Old rows quote commit edfd703; new rows quote commit {dl.FILE_COMMIT[:7]} (the file's last change; "
         f"repository head {dl.HEAD_COMMIT[:7]}). Lines are compared cell by cell; the newest file ends "
         "every line with one more, empty, cell (a trailing comma), which is not counted as a change."),
        "",
        (f"- {len(kept)} old rows: both quoted lines unchanged; row kept as read and checked (numbers, "
         "study, notes, second reading), only `source_location`/`quote` now name the newest version."),
        f"- {len(changed)} old rows: a quoted line changed; `checked_by`/`checked_on` cleared (listed below).",
        f"- {len(dropped)} old rows: not a study of the paper's main analyses; left out of the new sheet (listed below).",
        f"- {len(new) - len(kept) - len(changed)} new rows (empty `checked_by`).",
        "",
        "## Quoted lines that changed (checked_by cleared)",
        "",
        "| study_id | site | sex | line | cell: edfd703 -> newest | numbers of the row that change |",
        "|---|---|---|---|---|---|",
    ]
    for e in changed:
        old = e["old"]
        numbers = ", ".join(f"{f} {a} -> {b}" for f, a, b in e["changed_numbers"]) or "none (row kept, notes kept)"
        for label, _, _, diffs in e["changed_lines"]:
            cells = "; ".join(f"{f}: {a} -> {b}" for f, a, b in diffs)
            lines.append(f"| {old['study_id']} | {old['cancer_site']} | {old['sex']} | {label} | {cells} | {numbers} |")
    lines += ["", "## Old rows whose quoted lines are unchanged but whose numbers differ from the rule",
              "", "Kept as they were (an extractor's documented choice, see the row's notes):", ""]
    for e in kept:
        if e["changed_numbers"]:
            diffs = ", ".join(f"{f}: kept {a!r}, rule gives {b!r}" for f, a, b in e["changed_numbers"])
            lines.append(f"- {e['old']['study_id']} ({e['old']['cancer_site']}, {e['old']['sex']}): {diffs}")
    lines += ["", "## Old rows left out (not in the paper's main analyses)", "",
              "| study_id | site | sex | why |", "|---|---|---|---|"]
    for old in dropped:
        lines.append(f"| {old['study_id']} | {old['cancer_site']} | {old['sex']} | {dropped_reason(old, sheet)} |")
    lines += ["", "## Ties for the highest dose", ""]
    for _, r in new.iterrows():
        if " Another category" in r["notes"]:
            tie = r["notes"].split(" Another category", 1)[1]
            lines.append(f"- {r['study']} ({r['outcome']}, {r['cancer_site']}): another category{tie}")
    lines += ["", "## Studies of the dose-level sheet without a highest-vs-reference row", ""]
    studies = sheet.groupby(["outcome_key", "study"], sort=False)["referent"].apply(lambda r: (r == "yes").sum())
    for (key, study), count in studies.items():
        if count != 1:
            lines.append(f"- {study} ({key}): {count} rows with estimate 1 and no CI, so no reference "
                         "category to compare with (see DOSE_RULES.md, anomalies).")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=dl.ROOT / "extraction/_staging")
    path, report = build(parser.parse_args().out)
    print(path)
    for entry in report:
        old, new = entry["old"], entry["new"]
        if new is None:
            print("DROPPED", old["study_id"], old["cancer_site"], old["sex"])
        elif entry["changed_lines"] or entry["changed_numbers"]:
            print("CHANGED", old["study_id"], old["cancer_site"], old["sex"],
                  [(l, d) for l, _, _, d in entry["changed_lines"]], entry["changed_numbers"])


if __name__ == "__main__":
    main()

"""The living summary: one row per analysis, the history of published versions, and what changed.

``analyses/history.csv`` gets one row per analysis per published version, appended only when the
analysis's inputs (content hash) or results changed. ``analyses/CHANGES.md`` says in words what
each version changed ("+2 studies (X 2024, Y 2025); HR 0.62 (0.52-0.74) -> 0.60 (0.51-0.70);
prediction interval no longer crosses 1"). The summary table (Markdown, HTML, CSV) is re-made from
the latest version of every analysis.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from meta.errors import SheetError
from meta.sheets.evidence import STUDY_COLUMNS
from meta.sheets.load import load_sheet
from meta.sheets.review import ReviewDescription

OUTPUT = Path("analyses") / "output"
PLOTS = {"forest": ("png", "svg"), "cumulative": ("png",), "funnel": ("png",)}  # plot -> formats
HISTORY_COLUMNS = ("version_date", "analysis", "input_hash", "measure", "k", "estimate", "ci_lower",
                   "ci_upper", "pi_lower", "pi_upper", "tau2", "i2", "studies", "spec_hash")
SUMMARY_COLUMNS = ("Outcome", "Population", "Comparison", "Studies (k)", "Participants / events",
                   "Pooled estimate (95% CI)", "Absolute effect per 1,000 (95% CI)", "Prediction interval",
                   "I\u00b2", "tau\u00b2", "Model",
                   "Certainty (GRADE)", "Sequential monitoring (TSA)", "Last updated", "Change since previous version")
NUMERIC_COLUMNS = ("measure", "k", "participants", "events", "estimate", "ci_lower", "ci_upper", "pi_lower",
                   "pi_upper", "i2_percent", "tau2")  # summary.csv: on the natural scale, unformatted
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Version:
    """One published version of one analysis (a row of history.csv), on the natural scale."""

    version_date: str
    analysis: str
    input_hash: str
    measure: str
    k: int
    estimate: float
    ci_lower: float
    ci_upper: float
    pi_lower: float
    pi_upper: float
    tau2: float
    i2: float
    studies: tuple[str, ...]
    spec_hash: str = ""  # of the spec file alone: tells a spec change from a data change ("" before 0.2.0)

    @property
    def is_ratio(self) -> bool:
        return self.measure.split()[0] in ("RR", "OR", "HR")  # 'RR at 8.75 mMET-h/week' for a curve

    @property
    def null(self) -> float:
        return 1.0 if self.is_ratio else 0.0

    def same_result(self, other: "Version") -> bool:
        """Same inputs and the same numbers (as history.csv stores them; NaN equals NaN). The spec's
        own hash is not compared: the input hash already covers the spec."""
        def same(a, b):
            return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)

        return all(same(getattr(self, f.name), getattr(other, f.name))
                   for f in fields(self) if f.name not in ("version_date", "spec_hash"))


def filled(study: dict) -> dict:
    """What an analysis' input hash covers of a publication's row of studies.csv: its described fields
    (``STUDY_COLUMNS``), so the identification's quote and checker, kept beside them, change no result."""
    return {key: study.get(key, "") for key in STUDY_COLUMNS}


def selected_rows(spec, studies: dict, sheets: dict) -> tuple[pd.DataFrame, str]:
    """The rows a spec selects (its sheet read once per run: ``sheets`` caches them) and the hash of its
    inputs: the spec file, the rows, and the described fields of their publications."""
    if spec.sheet not in sheets:
        frame, problems = load_sheet(spec.sheet)
        if problems:
            raise SheetError(problems)
        sheets[spec.sheet] = frame
    chosen = spec.select(sheets[spec.sheet])
    digest = hashlib.sha256()
    digest.update(spec.path.read_bytes())
    digest.update(chosen.to_csv(lineterminator="\n").encode())
    for study_id in sorted(set(chosen.get("study_id", pd.Series(dtype=str)).dropna())):
        digest.update(json.dumps(filled(studies.get(study_id, {})), sort_keys=True).encode())
    return chosen, digest.hexdigest()


def stored(x: float) -> float:
    """A number as history.csv keeps it (10 decimals), so a re-read version compares equal."""
    return math.nan if x != x else round(float(x), 10)


def read_history(text: str) -> list[Version]:
    """Versions from the text of history.csv (empty text: no versions)."""
    if not text.strip():
        return []
    versions = []
    for row in csv.DictReader(io.StringIO(text)):
        versions.append(Version(
            row["version_date"], row["analysis"], row["input_hash"], row["measure"], int(row["k"]),
            *(float(row[c]) if row[c] else math.nan for c in
              ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper", "tau2", "i2")),
            tuple(s for s in row["studies"].split("; ") if s), row.get("spec_hash") or ""))
    return versions


def history_text(versions: list[Version]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for v in versions:
        writer.writerow([v.version_date, v.analysis, v.input_hash, v.measure, v.k,
                         *(_num(getattr(v, c)) for c in ("estimate", "ci_lower", "ci_upper", "pi_lower",
                                                         "pi_upper", "tau2", "i2")),
                         "; ".join(v.studies), v.spec_hash])
    return out.getvalue()


def _num(x: float) -> str:
    return "" if x != x else repr(round(float(x), 10))


def latest(versions: list[Version]) -> dict[str, Version]:
    """The newest version of each analysis."""
    out: dict[str, Version] = {}
    for v in versions:
        out[v.analysis] = v
    return out


def previous(versions: list[Version], analysis: str) -> Version | None:
    """The version of ``analysis`` before its newest one, if any."""
    mine = [v for v in versions if v.analysis == analysis]
    return mine[-2] if len(mine) > 1 else None


def update_history(versions: list[Version], current: list[Version]) -> tuple[list[Version], list[Version]]:
    """Append the current versions whose inputs or results differ from the last published ones.

    Returns the new history and the versions appended.
    """
    last = latest(versions)
    added = [v for v in current if v.analysis not in last or not v.same_result(last[v.analysis])]
    return versions + added, added


def interval(v: Version, lo: float, hi: float) -> str:
    """'0.52-0.74' for ratios; '-0.35 to 0.21' where a limit is negative."""
    joiner = " to " if lo < 0 or hi < 0 else "-"
    return f"{lo:.2f}{joiner}{hi:.2f}"


def headline(v: Version) -> str:
    """'HR 0.62 (0.52-0.74)'."""
    return f"{v.measure} {v.estimate:.2f} ({interval(v, v.ci_lower, v.ci_upper)})"


def crosses_null(v: Version, lo: float, hi: float) -> bool:
    return lo <= v.null <= hi


def describe_change(old: Version | None, new: Version, title: str) -> str:
    """One line of CHANGES.md for an analysis whose published version changed."""
    if old is None:
        return f"{title}: first published with k = {new.k}; {headline(new)}"
    parts = []
    added = [s for s in new.studies if s not in old.studies]
    removed = [s for s in old.studies if s not in new.studies]
    if added:
        parts.append(f"+{len(added)} {'study' if len(added) == 1 else 'studies'} ({', '.join(added)})")
    if removed:
        parts.append(f"-{len(removed)} {'study' if len(removed) == 1 else 'studies'} ({', '.join(removed)})")
    spec_changed = bool(old.spec_hash) and old.spec_hash != new.spec_hash
    if spec_changed:
        parts.append("analysis spec changed")
    elif not added and not removed:
        parts.append("study data corrected" if old.input_hash != new.input_hash
                     else "re-computed by a new version of the toolkit")
    if headline(old) != headline(new):
        parts.append(f"{headline(old)} -> {headline(new)}")
    else:
        parts.append(f"{headline(new)} (unchanged to two decimals)")
    for name, old_cross, new_cross in (
            ("confidence interval", crosses_null(old, old.ci_lower, old.ci_upper), crosses_null(new, new.ci_lower, new.ci_upper)),
            ("prediction interval", crosses_null(old, old.pi_lower, old.pi_upper), crosses_null(new, new.pi_lower, new.pi_upper))):
        if old_cross and not new_cross:
            parts.append(f"{name} no longer crosses {new.null:g}")
        elif new_cross and not old_cross:
            parts.append(f"{name} now crosses {new.null:g}")
    return f"{title}: " + "; ".join(parts)


def changes_text(existing: str, date: str, lines: list[str]) -> str:
    """CHANGES.md with a new section for ``date`` on top (merged if that date already has one; a line
    the section already holds, left by a run that stopped before history.csv, is not added twice)."""
    header = "# Changes to the pooled results\n\nNewest first. Written by `meta run`; one section per published version.\n"
    body = existing[len(header):] if existing.startswith(header) else ""
    section_head = f"\n## {date}\n\n"
    if body.startswith(section_head):
        rest = body[len(section_head):]
        there = set(rest.split("\n## ", 1)[0].splitlines())
        return header + section_head + "".join(f"- {line}\n" for line in lines if f"- {line}" not in there) + rest
    return header + section_head + "".join(f"- {line}\n" for line in lines) + body


@dataclass(frozen=True)
class SummaryRow:
    """One row of the living summary table (text cells, as shown)."""

    analysis: str
    outcome: str
    population: str
    comparison: str
    k: str
    participants: str
    estimate: str
    absolute: str
    prediction: str
    i2: str
    tau2: str
    model: str
    certainty: str
    sequential: str
    updated: str
    change: str
    numbers: tuple = ()  # the NUMERIC_COLUMNS of summary.csv, unformatted


    def cells(self) -> list[str]:
        return [self.outcome, self.population, self.comparison, self.k, self.participants, self.estimate,
                self.absolute, self.prediction, self.i2, self.tau2, self.model, self.certainty, self.sequential,
                self.updated, self.change]


def absolute_effect(measure: str, baseline: float, estimate: float, lower: float, upper: float) -> str:
    """Events per 1,000 without and with the intervention (GRADE summary of findings): the baseline
    risk times the RR or HR, or converted through the OR; '' for other measures."""
    if measure in ("RR", "HR"):
        convert = lambda ratio: baseline * ratio  # noqa: E731
    elif measure == "OR":
        convert = lambda ratio: ratio * baseline / (1 - baseline + ratio * baseline)  # noqa: E731
    else:
        return ""
    per = [round(1000 * min(1.0, convert(x))) for x in (estimate, lower, upper)]
    return f"{round(1000 * baseline)} \u2192 {per[0]} ({per[1]} to {per[2]})"


def certainty_cells(records: list[dict]) -> tuple[list[str], list[str]]:
    """The certainty cell of each analysis with footnote numbers, and the numbered footnotes."""
    cells, notes = [], []
    for record in records:
        grade = record.get("certainty") or {}
        marks = []
        for reason in grade.get("reasons", []):
            notes.append(f"{record['title']}: downgraded for {reason}")
            marks.append(str(len(notes)))
        cells.append(f"{grade.get('label', 'not rated')}" + (f" ({', '.join(marks)})" if marks else ""))
    return cells, notes


def summary_markdown(rows: list[SummaryRow], date: str, footnotes: list[str] = (),
                     review: ReviewDescription = ReviewDescription()) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"# Living summary: {review.title}", "", f"Version of {date}. {review.description}", "",
             "| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---|" * len(SUMMARY_COLUMNS)]
    lines += ["| " + " | ".join(cell(c) for c in r.cells()) + " |" for r in rows]
    if footnotes:
        lines += ["", "Certainty: GRADE-style, computed from the data (see docs/METHODS.md); start high for "
                  "randomised trials, low for cohorts.", ""]
        lines += [f"{n}. {note}" for n, note in enumerate(footnotes, start=1)]
    return "\n".join(lines) + "\n"


def summary_csv(rows: list[SummaryRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("analysis",) + SUMMARY_COLUMNS + NUMERIC_COLUMNS)
    for r in rows:
        writer.writerow([safe_csv_cell(c) for c in [r.analysis, *r.cells()]] + [_plain(x) for x in r.numbers])
    return out.getvalue()


def _plain(x) -> str:
    """A number for a spreadsheet: empty when missing, 10 significant digits otherwise."""
    if x is None or (isinstance(x, float) and x != x):
        return ""
    return x if isinstance(x, str) else f"{x:.10g}"


def safe_csv_cell(text: str) -> str:
    """Neutralise spreadsheet formulas: a cell starting with = + - @ gets a leading apostrophe.

    Numbers (e.g. '-0.25') are left alone; only text that a spreadsheet would run is changed.
    """
    text = str(text)
    if text.startswith(FORMULA_START):
        try:
            float(text)
            return text
        except ValueError:
            return "'" + text
    return text


def summary_html_table(rows: list[SummaryRow], link=lambda r: None, footnotes: list[str] = ()) -> str:
    """The summary as an HTML table (and its numbered footnotes); every cell escaped."""
    head = "".join(f"<th scope=\"col\">{html.escape(c)}</th>" for c in SUMMARY_COLUMNS)
    body = []
    for r in rows:
        cells = [html.escape(c) for c in r.cells()]
        target = link(r)
        if target:
            cells[0] = f"<a href=\"{html.escape(target)}\">{cells[0]}</a>"
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in footnotes)
    return (f"<table class=\"summary\">\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body)
            + "\n</tbody>\n</table>\n" + (f"<ol class=\"footnotes\">{notes}</ol>\n" if notes else ""))


def summary_rows(records: list[dict], versions: list[Version]) -> tuple[list[SummaryRow], list[str]]:
    """Every summary row, with the certainty footnotes numbered across the table."""
    cells, footnotes = certainty_cells(records)
    return [summary_row(rec, versions, cell) for rec, cell in zip(records, cells)], footnotes


def summary_row(record: dict, versions: list[Version], certainty: str) -> SummaryRow:
    res = record["result"]
    v = latest(versions)[record["analysis"]]
    before = previous(versions, record["analysis"])
    change = describe_change(before, v, "").removeprefix(": ") if before else "first version"
    part, events = record["participants"], record["events"]
    k = int(res["k"])
    counts = []
    if part[0] is not None:
        counts.append(f"{part[0]:,} participants" + ("" if part[1] == k else f" ({part[1]} of {k} studies)"))
    if events[0] is not None:
        counts.append(f"{events[0]:,} events" + ("" if events[1] == k else f" ({events[1]} of {k} studies)"))
    model = ("fixed effect" if res["method"] == "FE" else f"random effects, {res['method']}"
             + (", Knapp-Hartung" if res["ci_method"] == "knha" else ""))
    if record.get("kind") == "dose-response":
        model = f"dose-response ({res['model']}), {res['method']}"
    prediction = (f"{v.pi_lower:.2f} to {v.pi_upper:.2f}" if k > 1 and res["method"] != "FE"
                  and v.pi_lower == v.pi_lower else "n/a")
    return SummaryRow(
        analysis=record["analysis"], outcome=record["title"], population=record["population"],
        comparison=record["comparison"], k=str(k), participants="; ".join(counts) or "not reported",
        estimate=f"{record['measure']} {v.estimate:.2f} ({v.ci_lower:.2f} to {v.ci_upper:.2f})" + _other_doses(record),
        absolute=(absolute_effect(record["measure"], record["baseline_risk"], v.estimate, v.ci_lower, v.ci_upper)
                  + f" (baseline: {record['baseline_risk_source']})") if record.get("baseline_risk") else "no baseline risk in the spec",
        prediction=prediction, i2=f"{res['i2']:.0f}%",
        tau2=f"{res['tau2']:.4f}" if res.get("tau2") is not None else "n/a (multivariate)", model=model,
        certainty=certainty, sequential=_sequential_text(record), updated=v.version_date, change=change,
        numbers=(record["measure"], k, part[0], events[0], v.estimate, v.ci_lower, v.ci_upper, v.pi_lower,
                 v.pi_upper, res["i2"], res.get("tau2")))


def _other_doses(record: dict) -> str:
    """'; at 4.375: 0.96 (0.92 to 0.99); at 17.5: ...' for a dose-response curve's other reported doses."""
    others = [p for p in record.get("predictions", []) if p["dose"] != record.get("headline_dose")]
    return "".join(f"; at {p['dose']:g}: {p['estimate']:.2f} ({p['ci_lower']:.2f} to {p['ci_upper']:.2f})"
                   for p in others)


def _sequential_text(record: dict) -> str:
    tsa = record.get("tsa")
    if tsa:
        return f"{tsa['verdict']} (powered for {record['tsa_note']})"
    return record.get("tsa_note") or "not planned in the spec"

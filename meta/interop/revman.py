"""``meta import FILE.rm5``: a RevMan 5 review file -> result sheets, analysis specs and a report.

A RevMan 5 file is XML: ``COMPARISON`` elements hold ``DICH_OUTCOME`` (events/totals per arm),
``CONT_OUTCOME`` (means, SDs, totals) and ``IV_OUTCOME`` (generic inverse variance: estimate and
SE) elements; each holds ``*_DATA`` rows (one per study, ``STUDY_ID`` pointing at a ``STUDY`` with
its ``NAME`` and ``YEAR``) directly or inside ``*_SUBGROUP`` elements. An outcome states its measure
(``EFFECT_MEASURE``), method (``METHOD``: MH, IV, PETO), model (``RANDOM``) and its own pooled
results (``EFFECT_SIZE``, ``CI_START``, ``CI_END``, ``TAU2``, ``I2``, ``CHI2`` ...).

Each comparison becomes one sheet (``extraction/<file>/c<N>-<name>.csv``), each outcome one spec
(``analyses/<file>-c<N>-o<M>.toml``) with the review's model: random effects -> DerSimonian-Laird,
fixed -> inverse variance, z intervals, double-zero RR/OR studies left out as RevMan does. Methods
the engine lacks are mapped and said so: Mantel-Haenszel and Peto -> inverse variance. Every row
quotes its XML element verbatim. Before anything is written, each outcome is pooled as specified
and compared with what the file states (to the file's printed precision).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from meta.errors import MetaError
from meta.interop.importing import (
    ImportFileError,
    ImportPlan,
    ImportReport,
    NewSheet,
    apply_plan,
    fill_required,
    known_studies,
    review_dictionary,
    sheet_text,
    slug,
    study_key,
)
from meta.sheets.analyses import pool_frame
from meta.sheets.load import parse_sheet
from meta.stats.options import RATIO_MEASURES, EffectOptions, PoolOptions

KINDS = ("DICH", "CONT", "IV")
MEASURES_OF_KIND = {"DICH": ("RR", "OR", "RD"), "CONT": ("MD", "SMD"), "IV": ("RR", "OR", "RD", "MD", "SMD", "HR", "GEN")}
MEASURES = {  # RevMan's measure names -> the toolkit's
    "RR": "RR", "RISK RATIO": "RR", "OR": "OR", "ODDS RATIO": "OR", "PETO_OR": "OR", "PETO ODDS RATIO": "OR",
    "RD": "RD", "RISK DIFFERENCE": "RD", "MD": "MD", "MEAN DIFFERENCE": "MD", "SMD": "SMD",
    "STD. MEAN DIFFERENCE": "SMD", "STANDARDIZED MEAN DIFFERENCE": "SMD", "HR": "HR", "HAZARD RATIO": "HR",
}
STATED = (("estimate", "EFFECT_SIZE"), ("ci_lower", "CI_START"), ("ci_upper", "CI_END"), ("tau2", "TAU2"),
          ("i2", "I2"), ("q", "CHI2"))
RELATIVE_FLOOR = 1e-6  # full-precision numbers in a file agree to this relative difference


@dataclass(frozen=True)
class DataRow:
    """One study's data in one outcome: the element's attributes and its verbatim text."""

    attrs: dict
    quote: str
    subgroup: str = ""


@dataclass(frozen=True)
class Outcome:
    """One RevMan outcome with its rows, its subgroups' attributes and its own attributes."""

    kind: str
    comparison_no: str
    comparison: str
    no: str
    name: str
    attrs: dict
    labels: dict
    rows: tuple[DataRow, ...]
    subgroups: tuple[tuple[str, dict], ...]


@dataclass(frozen=True)
class RevManFile:
    """What the importer reads from a RevMan 5 file."""

    name: str
    title: str
    doi: str
    studies: dict
    outcomes: tuple[Outcome, ...]
    skipped: tuple[str, ...]


@dataclass(frozen=True)
class Check:
    """An outcome (or subgroup) pooled here, next to what the file states."""

    analysis: str
    label: str
    stated: dict
    pooled: dict
    differences: tuple[str, ...]
    expected: str

    @property
    def agrees(self) -> bool:
        return not self.differences


def read_revman(path: Path) -> RevManFile:
    """Parse a RevMan 5 file (defused XML); ImportFileError if it is not one."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ImportFileError(f"{path}: cannot be read ({err.strerror})") from None
    try:
        root = fromstring(raw)
    except (ParseError, DefusedXmlException) as err:
        raise ImportFileError(f"{path}: not a readable RevMan 5 file (XML: {err})") from None
    if root.tag != "COCHRANE_REVIEW":
        raise ImportFileError(f"{path}: not a RevMan 5 review (the root element is <{root.tag}>, "
                              "not <COCHRANE_REVIEW>)")
    verbatim = _verbatim_elements(root, _decode(raw, path))
    studies = {s.get("ID"): (s.get("NAME") or _name_from_id(s.get("ID")), s.get("YEAR") or "")
               for s in root.iter("STUDY") if s.get("ID")}
    outcomes, skipped = [], []
    for comparison in root.iter("COMPARISON"):
        for element in comparison:
            kind = element.tag.removesuffix("_OUTCOME")
            if kind == element.tag:
                continue
            label = f"outcome {comparison.get('NO')}.{element.get('NO')} '{_text(element, 'NAME')}'"
            if kind not in KINDS:
                skipped.append(f"{label}: {element.tag} (O-E and variance) is not imported")
                continue
            outcomes.append(_outcome(kind, comparison, element, verbatim))
    title = _text(root.find("COVER_SHEET"), "TITLE") if root.find("COVER_SHEET") is not None else ""
    return RevManFile(path.name, title or path.stem, root.get("DOI", ""), studies, tuple(outcomes),
                      tuple(skipped))


def _decode(raw: bytes, path: Path) -> str:
    declared = re.match(rb"<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)", raw)
    try:
        return raw.decode(declared.group(1).decode() if declared else "utf-8").lstrip("\ufeff")
    except (LookupError, UnicodeDecodeError) as err:
        raise ImportFileError(f"{path}: the text cannot be decoded ({err})") from None


def _verbatim_elements(root: Element, text: str) -> dict[int, str]:
    """id(element) -> its text in the file, for every *_DATA element (document order matches)."""
    out = {}
    for kind in KINDS:
        tag = f"{kind}_DATA"
        pattern = re.compile(rf"<{tag}\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*?(?:/>|>.*?</{tag}\s*>)", re.S)
        elements = list(root.iter(tag))
        texts = [m.group(0) for m in pattern.finditer(text)]
        if len(texts) != len(elements):
            raise ImportFileError(f"cannot locate every <{tag}> in the file's text "
                                  f"({len(elements)} elements, {len(texts)} found)")
        out.update({id(e): t for e, t in zip(elements, texts)})
    return out


def _outcome(kind: str, comparison: Element, element: Element, verbatim: dict) -> Outcome:
    rows, subgroups = [], []
    for child in element:
        if child.tag == f"{kind}_DATA":
            rows.append(DataRow(dict(child.attrib), verbatim[id(child)]))
        elif child.tag == f"{kind}_SUBGROUP":
            name = _text(child, "NAME") or f"subgroup {child.get('NO')}"
            subgroups.append((name, dict(child.attrib)))
            rows += [DataRow(dict(d.attrib), verbatim[id(d)], name) for d in child.iter(f"{kind}_DATA")]
    attrs = dict(element.attrib)
    if "EFFECT_MEASURE" not in attrs:
        attrs["EFFECT_MEASURE"] = _text(element, "EFFECT_MEASURE")
    labels = {tag: _text(element, tag) for tag in ("GROUP_LABEL_1", "GROUP_LABEL_2", "GRAPH_LABEL_1", "GRAPH_LABEL_2")}
    return Outcome(kind, comparison.get("NO", ""), _text(comparison, "NAME"), element.get("NO", ""),
                   _text(element, "NAME"), attrs, labels, tuple(rows), tuple(subgroups))


def _text(element: Element | None, tag: str) -> str:
    found = element.find(tag) if element is not None else None
    return " ".join("".join(found.itertext()).split()) if found is not None else ""


def _name_from_id(study_id: str) -> str:
    """'STD-Hart-_x0026_-Sutherland-1977' -> 'Hart & Sutherland 1977' (RevMan escapes characters as _xHHHH_)."""
    text = re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), study_id.removeprefix("STD-"))
    return " ".join(text.replace("-", " ").split())


# --- mapping -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mapped:
    """One outcome as mapped: the spec written and how to pool it here."""

    outcome: Outcome
    analysis: str
    sheet: str
    value: str
    effect_options: EffectOptions
    pool_options: PoolOptions
    divergences: tuple[str, ...]


def import_revman(path: Path, root: Path, today: str) -> ImportReport:
    """Import the RevMan 5 file at ``path`` into the review at ``root`` (all or nothing)."""
    review = read_revman(path)
    root = Path(root)
    dictionary = review_dictionary(root)
    if not review.outcomes:
        raise ImportFileError(f"{review.name}: no dichotomous, continuous or generic inverse-variance outcome to import")
    stem = slug(Path(path).stem, 24)
    source_url = f"https://doi.org/{review.doi}" if review.doi else review.name
    known, new_studies, ids = known_studies(root), [], {}
    lines = [f"# Import of the RevMan 5 file {review.name}", "", f"Review: {review.title}" +
             (f" (doi:{review.doi})" if review.doi else ""), ""]
    sheets: dict[str, list[dict]] = {}
    mapped, notes = [], []
    for outcome in review.outcomes:
        measure = MEASURES.get(outcome.attrs["EFFECT_MEASURE"].upper(), "GEN" if outcome.kind == "IV" else "")
        where = f"{outcome.comparison_no}.{outcome.no} {outcome.name}"
        if measure not in MEASURES_OF_KIND[outcome.kind]:
            notes.append(f"- {where}: measure '{outcome.attrs['EFFECT_MEASURE']}' of a {outcome.kind} outcome "
                         "is not supported; not imported")
            continue
        if outcome.attrs.get("SWAP_EVENTS") == "YES":
            notes.append(f"- {where}: the review analyses non-events (SWAP_EVENTS); not imported, because "
                         "the sheet would not hold the numbers the file shows")
            continue
        sheet = f"extraction/{stem}/c{outcome.comparison_no}-{slug(outcome.comparison, 30)}.csv"
        rows = sheets.setdefault(sheet, [])
        value = slug(outcome.name, 40).replace("-", "_")
        if any(m.sheet == sheet and m.value == value for m in mapped):
            value = f"{value}_{outcome.no}"
        counts = {}
        for row in outcome.rows:
            counts[row.attrs.get("STUDY_ID")] = counts.get(row.attrs.get("STUDY_ID"), 0) + 1
        used = 0
        for row in outcome.rows:
            study = row.attrs.get("STUDY_ID", "")
            name, year = review.studies.get(study, (_name_from_id(study), ""))
            year = year if re.fullmatch(r"\d{4}", year) else (re.findall(r"\b(1[89]\d\d|20\d\d)\b", name) or [""])[0]
            effect, skip = _effect_columns(outcome, row, measure)
            if skip:
                notes.append(f"- {where}, {name}: {skip}; left out")
                continue
            if study not in ids:
                first_author = name.split()[0] if name.split() else name
                key, present = study_key(slug(_name_from_id(study), 30).replace("-", ""), first_author, year,
                                         known, set(ids.values()))
                ids[study] = key
                if not present:
                    new_studies.append({"study_id": key, "first_author": first_author, "year": year,
                                        "title": f"as included in the RevMan review '{review.title}'",
                                        "design": "rct", "cohort": name, "source_url": source_url})
            label = f"{name} ({row.subgroup})" if counts[study] > 1 and row.subgroup else name
            location = (f"RevMan file {review.name}, comparison {outcome.comparison_no} '{outcome.comparison}', "
                        f"outcome {outcome.comparison_no}.{outcome.no} '{outcome.name}'"
                        + (f", subgroup '{row.subgroup}'" if row.subgroup else "") + f", study {study}")
            rows.append({
                "study_id": ids[study], "study": label, "year": year, "cohort": label, "design": "rct",
                "population": f"as in the RevMan review '{review.title}'", "outcome": value, "sex": "both",
                "contrast": _contrast(outcome), "measure": measure, **effect, "subgroup": row.subgroup,
                "source_location": location, "source_url": source_url, "quote": row.quote,
                "extracted_by": f"meta import ({review.name})", "extracted_on": today,
                "notes": ("the study is in more than one subgroup of this outcome (as in the review): "
                          "check for a shared control group" if label != name else ""),
            })
            used += 1
        if not used:
            notes.append(f"- {where}: no estimable study; not imported")
            continue
        mapped.append(_map(outcome, measure, sheet, value, stem))
    if not mapped:
        raise ImportFileError(f"{review.name}: nothing to import\n" + "\n".join(notes))
    filled = fill_required([r for rows in sheets.values() for r in rows], dictionary)
    texts = {path: sheet_text(tuple(rows), dictionary) for path, rows in sheets.items() if rows}
    checks = [c for m in mapped for c in _checks(m, texts[m.sheet])]
    lines += _mapping_lines(review, mapped, filled, notes, checks)
    report_path = f"extraction/{stem}/IMPORT_REPORT.md"
    plan = ImportPlan(tuple(NewSheet(p, tuple(r)) for p, r in sheets.items() if r), tuple(new_studies),
                      tuple((f"analyses/{m.analysis}.toml", _spec_text(m, review)) for m in mapped),
                      report_path, "\n".join(lines) + "\n")
    written = apply_plan(root, plan)
    return ImportReport(tuple(written), plan.report, tuple(checks))


def _effect_columns(outcome: Outcome, row: DataRow, measure: str) -> tuple[dict, str]:
    """The sheet's effect cells of one data row (attribute texts as written), or why it is left out."""
    a = row.attrs
    if outcome.kind == "DICH":
        cells = {"events_treat": a.get("EVENTS_1"), "n_treat": a.get("TOTAL_1"),
                 "events_ctrl": a.get("EVENTS_2"), "n_ctrl": a.get("TOTAL_2")}
        if not all(cells.values()) or min(_number(v) for v in (cells["n_treat"], cells["n_ctrl"])) <= 0:
            return {}, "no events and totals for both arms"
        return cells, ""
    if outcome.kind == "CONT":
        cells = {"mean_treat": a.get("MEAN_1"), "sd_treat": a.get("SD_1"), "n_treat": a.get("TOTAL_1"),
                 "mean_ctrl": a.get("MEAN_2"), "sd_ctrl": a.get("SD_2"), "n_ctrl": a.get("TOTAL_2")}
        if not all(cells.values()) or min(_number(cells[c]) for c in ("sd_treat", "sd_ctrl")) <= 0 or \
                min(_number(cells[c]) for c in ("n_treat", "n_ctrl")) < 2:
            return {}, "not estimable (a mean, an SD > 0 or two participants per arm missing)"
        return cells, ""
    ratio = measure in RATIO_MEASURES or outcome.attrs.get("LOG_DATA") == "YES"
    yi = a.get("ESTIMATE") or (a.get("LOG_EFFECT_SIZE") if ratio else a.get("EFFECT_SIZE"))
    se = a.get("SE")
    if not yi or not se or _number(se) <= 0 or a.get("ESTIMABLE") == "NO":
        return {}, "not estimable (no estimate or SE)"
    cells = {"yi": yi, "sei": se}
    cells.update({k: v for k, v in (("n_treat", a.get("TOTAL_1")), ("n_ctrl", a.get("TOTAL_2")))
                  if v and _number(v) > 0})
    return cells, ""


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _contrast(outcome: Outcome) -> str:
    one, two = outcome.labels["GROUP_LABEL_1"], outcome.labels["GROUP_LABEL_2"]
    return f"{one} vs {two}" if one and two else outcome.comparison


def _map(outcome: Outcome, measure: str, sheet: str, value: str, stem: str) -> _Mapped:
    a = outcome.attrs
    random = a.get("RANDOM") == "YES"
    method = a.get("METHOD", "IV").upper()
    divergences = []
    if method == "MH" and not random:
        divergences.append("RevMan pooled this outcome with Mantel-Haenszel weights; the engine has no "
                           "Mantel-Haenszel estimator, so it is pooled by inverse variance (fixed effect): the "
                           "estimate differs slightly, most where events are few")
    elif method == "MH":
        divergences.append("RevMan's random-effects model for Mantel-Haenszel data takes its heterogeneity "
                           "statistic (and so tau^2) from the Mantel-Haenszel estimate; DerSimonian-Laird here "
                           "uses inverse-variance weights throughout, so tau^2 and the estimate differ slightly")
    elif method == "PETO":
        divergences.append("Peto odds ratios are not implemented: pooled as inverse-variance odds ratios "
                           "(with 0.5 added to tables with a zero cell)")
    if measure == "SMD" and outcome.kind == "CONT":
        divergences.append("RevMan's SMD is Hedges' g with an approximate small-sample correction and its own "
                           "variance; the engine uses metafor's exact correction and variance, so study and "
                           "pooled SMDs differ slightly")
    if measure == "GEN":
        divergences.append(f"the review's measure '{a['EFFECT_MEASURE']}' is pooled as a generic effect "
                           "on the scale its data were entered")
    level = _number(a.get("CI_TOTAL")) if a.get("CI_TOTAL") else 95.0
    zero_cells = "drop" if outcome.kind == "DICH" and measure in ("RR", "OR") else "keep"
    return _Mapped(outcome, f"{stem}-c{outcome.comparison_no}-o{outcome.no}", sheet, value,
                   EffectOptions(measure, zero_cells=zero_cells),
                   PoolOptions(method="DL" if random else "FE", ci="z", level=level), tuple(divergences))


def _spec_text(m: _Mapped, review: RevManFile) -> str:
    o = m.outcome
    model = ("random effects, DerSimonian-Laird" if m.pool_options.method == "DL" else
             "fixed effect, inverse variance")
    method_name = {"MH": "Mantel-Haenszel", "IV": "inverse variance", "PETO": "Peto"}.get(
        o.attrs.get("METHOD", "IV").upper(), o.attrs.get("METHOD", ""))
    rationale = (f"Imported from RevMan file {review.name} (comparison {o.comparison_no}, outcome "
                 f"{o.comparison_no}.{o.no}): the review pooled with {method_name}, "
                 f"{'random' if o.attrs.get('RANDOM') == 'YES' else 'fixed'} effects; here {model} with z "
                 "intervals as RevMan" + ("; double-zero studies left out and 0.5 added to tables with a "
                                          "zero cell, as RevMan" if m.effect_options.zero_cells == "drop" else "")
                 + "." + "".join(f" Divergence: {d}." for d in m.divergences))
    favours = [_favours(o.labels[f"GRAPH_LABEL_{n}"]) or o.labels[f"GROUP_LABEL_{n}"] or default
               for n, default in ((1, "treatment"), (2, "control"))]
    values = {"title": f"{o.name} ({o.comparison})", "outcome": o.name,
              "population": f"As in the RevMan review '{review.title}'", "comparison": _contrast(o),
              "sheet": m.sheet, "measure": m.effect_options.measure, "method": m.pool_options.method, "ci": "z",
              "level": m.pool_options.level, "zero_cells": m.effect_options.zero_cells}
    lines = [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in values.items()]
    if o.subgroups:
        lines.append('subgroup = "subgroup"')
    lines += [f"favours = {json.dumps(favours, ensure_ascii=False)}",
              f"rationale = {json.dumps(rationale, ensure_ascii=False)}", "", "[filter]",
              f"outcome = {json.dumps(m.value)}"]
    return "\n".join(lines) + "\n"


def _favours(label: str) -> str:
    return re.sub(r"^\s*favou?rs?\s+", "", label, flags=re.I).strip()


# --- checking against the file's own results -----------------------------------------------------


def _checks(m: _Mapped, text: str) -> list[Check]:
    """Pool the outcome (and each subgroup) as specified and compare with the file's numbers."""
    frame, problems = parse_sheet(text, m.sheet)
    if frame is None:
        raise MetaError(f"{m.sheet}: {problems[0]}")
    rows = frame[frame["outcome"] == m.value]
    parts = [(f"{m.outcome.comparison_no}.{m.outcome.no} {m.outcome.name}", rows, m.outcome.attrs)]
    parts += [(f"{m.outcome.comparison_no}.{m.outcome.no} {m.outcome.name}, subgroup '{name}'",
               rows[rows["subgroup"] == name], attrs) for name, attrs in m.outcome.subgroups]
    checks = []
    for label, part, attrs in parts:
        if part.empty or attrs.get("ESTIMABLE", "YES") != "YES" or "EFFECT_SIZE" not in attrs:
            continue
        result = pool_frame(part, m.sheet, m.effect_options, m.pool_options)
        pooled = {"estimate": result.back(result.estimate), "ci_lower": result.back(result.ci_lower),
                  "ci_upper": result.back(result.ci_upper), "tau2": result.tau2, "i2": result.i2, "q": result.q}
        stated, differences = {}, []
        for name, attribute in STATED:
            if attribute not in attrs or (name == "tau2" and m.pool_options.method == "FE") or \
                    (name in ("i2", "q") and result.k < 2):
                continue
            stated[name] = _number(attrs[attribute])
            if not _same(pooled[name], attrs[attribute]):
                differences.append(f"{name} {_fmt(pooled[name])} here, {attrs[attribute]} in the file")
        checks.append(Check(m.analysis, label, stated, pooled, tuple(differences), "; ".join(m.divergences)))
    return checks


def _same(value: float, text: str) -> bool:
    """``value`` equals the number ``text`` to the precision it is written with."""
    stated = _number(text)
    if math.isnan(stated):
        return False
    mantissa = text.strip().lower().split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    half_unit = 0.5 * 10.0 ** (exponent - decimals)
    return abs(value - stated) <= max(half_unit * (1 + 1e-9), RELATIVE_FLOOR * abs(stated))


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _mapping_lines(review: RevManFile, mapped: list[_Mapped], filled: list[str], notes: list[str],
                   checks: list[Check]) -> list[str]:
    lines = ["## What became what", "",
             "- Each comparison -> one sheet; each outcome -> one spec and a value of the sheet's `outcome` column.",
             "- Study `NAME` -> `study` and `cohort`; `YEAR` -> `year`; `STUDY_ID` -> `study_id` (lower case) and a "
             "row of studies.csv.",
             "- DICH_DATA `EVENTS_1`, `TOTAL_1`, `EVENTS_2`, `TOTAL_2` -> `events_treat`, `n_treat`, `events_ctrl`, "
             "`n_ctrl` (group 1 = treatment, group 2 = control).",
             "- CONT_DATA `MEAN_1`, `SD_1`, `TOTAL_1`, `MEAN_2`, `SD_2`, `TOTAL_2` -> `mean_treat`, `sd_treat`, "
             "`n_treat`, `mean_ctrl`, `sd_ctrl`, `n_ctrl`.",
             "- IV_DATA `ESTIMATE` (or `LOG_EFFECT_SIZE` for ratios) -> `yi`; `SE` -> `sei`; totals -> `n_treat`, "
             "`n_ctrl`.",
             "- `*_SUBGROUP` `NAME` -> `subgroup` (the spec pools by it).",
             "- The quote of each row is its XML element, verbatim; `source_location` names file, comparison, "
             "outcome, subgroup and study.",
             "- `design` = rct for every study (RevMan's analysis data do not record the design; check it).",
             "- `sex` = both, `population` = the review's; edit them where the review says more."]
    if filled:
        lines.append(f"- Required by this project's dictionary, not in the file: {', '.join(filled)} "
                     "(filled with 'not reported'; edit them).")
    lines += ["", "## Outcomes", ""]
    for m in mapped:
        o = m.outcome
        lines.append(f"- {o.comparison_no}.{o.no} {o.name}: {o.kind} {o.attrs['EFFECT_MEASURE']} "
                     f"({o.attrs.get('METHOD', 'IV')}, {'random' if o.attrs.get('RANDOM') == 'YES' else 'fixed'}) "
                     f"-> analyses/{m.analysis}.toml: {m.effect_options.measure}, {m.pool_options.method}, "
                     f"z intervals{', subgroups' if o.subgroups else ''}; sheet {m.sheet}, outcome = {m.value}")
        lines += [f"  - divergence: {d}" for d in m.divergences]
    lines += ["", "## Pooled here vs stated in the file", ""]
    for c in checks:
        verdict = "agrees" if c.agrees else ("differs (expected: see divergence above): " if c.expected
                                             else "DIFFERS: ") + "; ".join(c.differences)
        lines.append(f"- {c.label}: {verdict}")
    if notes or review.skipped:
        lines += ["", "## Not imported", ""] + notes + [f"- {s}" for s in review.skipped]
    return lines

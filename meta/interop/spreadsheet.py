"""``meta import FILE.csv|FILE.xlsx --outcome NAME``: a plain spreadsheet -> a sheet, a spec, a report.

Each column is matched to a dictionary column by its name, its common synonyms (``n1``/``n2``,
``events_1``/``total_1``, ``mean_t``/``sd_c``, ``hr``/``lower``/``upper``, ``yi``/``vi``/``se``,
metafor's ``n1i``/``m1i``/``sd1i``, ``tpos``/``tneg``/``cpos``/``cneg`` ...) or the name itself; the report says which column became
which and which were left out. Each row quotes its cells verbatim ('column: value; ...') and
points at its file row. The spec pools with REML and Knapp-Hartung intervals until edited.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from pathlib import Path

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
from meta.stats.options import MEASURES, EffectOptions, PoolOptions
from meta.stats.results import render_text

ARMS = {"treat": ("1", "e", "t", "tx", "trt", "treat", "treatment", "exp", "experimental", "int", "intervention",
                  "active"),
        "ctrl": ("2", "c", "ctrl", "control", "con", "comparator", "placebo", "pbo")}
ARM_QUANTITIES = {"events": ("events", "event", "ev", "cases", "deaths", "r", "x"),
                  "nonevents": ("nonevents", "non_events", "noncases", "non_cases"),
                  "n": ("n", "total", "tot", "size", "sample_size", "participants", "patients"),
                  "mean": ("mean", "m", "avg", "average"), "sd": ("sd", "std", "stdev", "sdev", "s")}
SINGLE = {
    "study": ("study", "study_name", "studlab", "author", "authors", "author_year", "trial", "label", "name"),
    "year": ("year", "pub_year", "publication_year", "yr"),
    "estimate": ("estimate", "est", "effect", "point_estimate", "ratio", "hr", "rr", "or"),
    "ci_lower": ("lower", "lo", "low", "lci", "ll", "lcl", "lower_ci", "ci_low", "ci_lo", "ci_lb", "lb", "lower95",
                 "lower_95", "l95", "ci_l", "lower_limit", "hr_lower", "rr_lower", "or_lower"),
    "ci_upper": ("upper", "hi", "high", "uci", "ul", "ucl", "upper_ci", "ci_high", "ci_hi", "ci_ub", "ub", "upper95",
                 "upper_95", "u95", "ci_u", "upper_limit", "hr_upper", "rr_upper", "or_upper"),
    "ci_level": ("level", "conf_level", "ci_level_percent"),
    "yi": ("yi", "te", "es", "effect_size", "y", "log_hr", "loghr", "lnhr", "log_rr", "logrr", "lnrr", "log_or",
           "logor", "lnor", "smd", "g", "hedges_g", "d", "cohens_d", "md"),
    "vi": ("vi", "var", "variance", "v", "var_te"),
    "sei": ("sei", "se", "se_te", "sete", "stderr", "std_err", "standard_error", "se_yi"),
    "n_total": ("n", "n_total", "total", "sample_size", "total_n", "participants"),
    "events_total": ("events", "total_events", "cases", "deaths"),
    "events_treat": ("ai", "tpos"), "events_ctrl": ("cpos",),
    "nonevents_treat": ("bi", "tneg"), "nonevents_ctrl": ("di", "cneg"),
}
MEASURE_HINTS = {"hr": "HR", "rr": "RR", "or": "OR", "log_hr": "HR", "loghr": "HR", "lnhr": "HR", "log_rr": "RR",
                 "logrr": "RR", "lnrr": "RR", "log_or": "OR", "logor": "OR", "lnor": "OR", "smd": "SMD", "g": "SMD",
                 "hedges_g": "SMD", "d": "SMD", "cohens_d": "SMD", "md": "MD"}
GROUP_DEFAULTS = (("events_treat", "RR"), ("mean_treat", "SMD"), ("estimate", "HR"), ("yi", "GEN"))


def synonyms() -> dict[str, str]:
    """Normalised column name -> dictionary column, for every synonym known (single names first:
    'se' is a standard error, not the SD of arm 'e')."""
    table = {word: column for column, words in SINGLE.items() for word in words}
    for arm, arm_words in ARMS.items():
        for quantity, words in ARM_QUANTITIES.items():
            column = f"{quantity}_{arm}"
            for q in words:
                for a in arm_words:
                    for form in (f"{q}_{a}", f"{q}{a}", f"{a}_{q}"):
                        table.setdefault(form, column)
            number = "1" if arm == "treat" else "2"
            metafor = {"events": f"e{number}i", "n": f"n{number}i", "mean": f"m{number}i", "sd": f"sd{number}i"}
            if quantity in metafor:  # metafor names non-events bi/di (in SINGLE)
                table.setdefault(metafor[quantity], column)
    return table


def normalise(name: str) -> str:
    """'Events (T)' -> 'events_t'; 'SD.1' -> 'sd_1'."""
    return "_".join(re.findall(r"[a-z0-9]+", str(name).lower()))


def read_table(path: Path, sheet: str | None = None) -> tuple[list[str], list[tuple[int, list[str]]], str]:
    """Header, (file row number, cells as text) of each non-empty row, and where they came from."""
    path = Path(path)
    if not path.exists():
        raise ImportFileError(f"{path}: the file does not exist")
    if path.suffix.lower() == ".xlsx":
        return _read_xlsx(path, sheet)
    if path.suffix.lower() != ".csv":
        raise ImportFileError(f"{path}: import reads .rm5 (RevMan 5), .csv and .xlsx files")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ImportFileError(f"{path}: not UTF-8 (byte {err.start}); save it as CSV UTF-8") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [(n, [c.strip() for c in r]) for n, r in enumerate(csv.reader(io.StringIO(text, newline=""), dialect), 1)]
    return _split(rows, path.name, path.name)


def _read_xlsx(path: Path, sheet: str | None):
    from openpyxl import load_workbook  # only needed for workbooks

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises many types for a damaged file
        raise ImportFileError(f"{path}: not a readable .xlsx workbook ({err})") from None
    if sheet is not None and sheet not in book.sheetnames:
        raise ImportFileError(f"{path}: no sheet '{sheet}'; its sheets: {', '.join(book.sheetnames)}")
    ws = book[sheet] if sheet else book.worksheets[0]
    rows = [(n, [_cell(v) for v in r]) for n, r in enumerate(ws.iter_rows(values_only=True), 1)]
    book.close()
    return _split(rows, path.name, f"{path.name}, sheet '{ws.title}'")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.date().isoformat() if isinstance(value, datetime.datetime) else value.isoformat()
    return str(value).strip()


def _split(rows, name: str, where: str):
    rows = [(n, cells) for n, cells in rows if any(cells)]
    if not rows:
        raise ImportFileError(f"{name}: the file is empty")
    (_, header), body = rows[0], rows[1:]
    if not body:
        raise ImportFileError(f"{name}: a header but no rows")
    width = len(header)
    return header, [(n, (cells + [""] * width)[:width]) for n, cells in body], where


def import_spreadsheet(path: Path, root: Path, outcome: str, today: str, measure: str | None = None,
                       constants: dict[str, str] | None = None, sheet: str | None = None) -> ImportReport:
    """Import a CSV or XLSX table of study results as one outcome of the review at ``root``."""
    root, path = Path(root), Path(path)
    dictionary = review_dictionary(root)
    constants = dict(constants or {})
    unknown = sorted(set(constants) - set(dictionary.index))
    if unknown:
        raise ImportFileError(f"--set column(s) {', '.join(unknown)} are not in extraction/dictionary.csv")
    header, body, where = read_table(path, sheet)
    mapping, unmapped = match_columns(header, dictionary.index)
    if "study" not in mapping.values():
        raise ImportFileError(f"{path.name}: no column of study labels (looked for: study, author, trial, label, ...)")
    measure = measure or _measure(header, mapping)
    if measure not in MEASURES:
        raise ImportFileError(f"measure must be one of {', '.join(MEASURES)}; got {measure!r}")
    name = slug(outcome, 40)
    value = name.replace("-", "_")
    known, new_studies, ids, rows = known_studies(root), [], {}, []
    for number, cells in body:
        row = {mapping[i]: text for i, text in enumerate(cells) if i in mapping and text}
        label = row.get("study", "")
        if not label:
            raise ImportFileError(f"{path.name}, row {number}: no study label")
        year = row.get("year") or (re.findall(r"\b(1[89]\d\d|20\d\d)\b", label) or [""])[0]
        first_author = label.split()[0]
        if label not in ids:
            wanted = row.get("study_id") or slug(label if year in label else f"{label} {year}", 30).replace("-", "")
            key, present = study_key(wanted, first_author, year, known, set(ids.values()))
            ids[label] = key
            if not present:
                new_studies.append({"study_id": key, "first_author": first_author, "year": year,
                                    "title": f"as listed in {path.name}", "design": constants.get("design", "rct"),
                                    "cohort": row.get("cohort", label), "source_url": path.name})
        row.update({"study_id": ids[label], "year": year, "measure": measure, "outcome": value})
        defaults = {"cohort": label, "design": "rct", "sex": "both", "contrast": "treatment vs control",
                    "population": f"as in {path.name}", "source_location": f"{where}, row {number}",
                    "source_url": path.name, "quote": "; ".join(f"{h}: {c}" for h, c in zip(header, cells) if c),
                    "extracted_by": "meta import", "extracted_on": today}
        for column, default in defaults.items():
            row.setdefault(column, default)
        row.update(constants)
        rows.append(row)
    filled = fill_required(rows, dictionary)
    sheet_path = f"extraction/{name}/{name}.csv"
    text = sheet_text(tuple(rows), dictionary)
    spec_path = f"analyses/{name}.toml"
    effect_options, pool_options = EffectOptions(measure), PoolOptions(method="REML", ci="knha")
    frame, problems = parse_sheet(text, sheet_path)
    if frame is None:
        raise MetaError(f"{sheet_path}: {problems[0]}")
    result = pool_frame(frame, sheet_path, effect_options, pool_options)
    report = _report(path, where, header, mapping, unmapped, measure, constants, filled, sheet_path, spec_path,
                     render_text(result))
    plan = ImportPlan((NewSheet(sheet_path, tuple(rows)),), tuple(new_studies),
                      ((spec_path, _spec(outcome, path, sheet_path, measure, value, "subgroup" in mapping.values())),),
                      f"extraction/{name}/IMPORT_REPORT.md", report)
    return ImportReport(tuple(apply_plan(root, plan)), report)


def match_columns(header: list[str], columns) -> tuple[dict[int, str], list[str]]:
    """Position of each matched column -> dictionary column, and the names left unmatched."""
    table = synonyms()
    mapping, unmapped = {}, []
    for i, name in enumerate(header):
        key = normalise(name)
        column = key if key in columns else table.get(key)
        if column is None or column in mapping.values():
            unmapped.append(name)
        else:
            mapping[i] = column
    return mapping, unmapped


def _measure(header: list[str], mapping: dict[int, str]) -> str:
    for i, column in mapping.items():
        hint = MEASURE_HINTS.get(normalise(header[i]))
        if hint and column in ("estimate", "yi"):
            return hint
    for column, default in GROUP_DEFAULTS:
        if column in mapping.values():
            return default
    raise ImportFileError("no effect columns found: give yi+vi (or se), estimate+lower+upper, events and totals "
                          "per arm, or means, SDs and totals per arm (see docs/USER_GUIDE.md)")


def _report(path, where, header, mapping, unmapped, measure, constants, filled, sheet_path, spec_path, pooled) -> str:
    lines = [f"# Import of {path.name}", "", f"Read: {where}; {sheet_path} and {spec_path} written.", "",
             "## Which column became which", "", "| column in the file | sheet column |", "|---|---|"]
    lines += [f"| {header[i]} | {column} |" for i, column in sorted(mapping.items())]
    lines += [""]
    if unmapped:
        lines.append(f"Not mapped (kept only in each row's quote): {', '.join(unmapped)}.")
    lines.append(f"Measure: {measure}" + ("" if any(MEASURE_HINTS.get(normalise(h)) == measure for h in header)
                                           else " (from the effect columns; --measure to choose another)") + ".")
    if constants:
        lines.append("Set for every row (--set): " + ", ".join(f"{k} = {v}" for k, v in constants.items()) + ".")
    lines.append("Every row, unless the file or --set gives it: quote = its cells as 'column: value'; "
                 "source_location = file and row; design = rct, sex = both, contrast = 'treatment vs control'. "
                 f"outcome = {sheet_path.split('/')[1].replace('-', '_')} and measure = {measure} for every row.")
    if filled:
        lines.append(f"Required by the dictionary, not in the file: {', '.join(filled)} (filled with 'not reported').")
    lines += ["", "## Pooled as the spec says (REML, Knapp-Hartung)", "", "```", pooled.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _spec(outcome: str, path: Path, sheet_path: str, measure: str, value: str, subgroup: bool) -> str:
    values = {"title": outcome, "outcome": outcome, "population": f"As in {path.name}",
              "comparison": "treatment vs control", "sheet": sheet_path, "measure": measure, "method": "REML",
              "ci": "knha", "rationale": f"Imported from {path.name}. REML with Knapp-Hartung intervals, the "
              "toolkit's default for a new analysis: edit this to say why these studies are pooled and why this model."}
    lines = [f"{key} = {json.dumps(text, ensure_ascii=False)}" for key, text in values.items()]
    if subgroup:
        lines.append('subgroup = "subgroup"')
    return "\n".join(lines + ["", "[filter]", f"outcome = {json.dumps(value)}"]) + "\n"

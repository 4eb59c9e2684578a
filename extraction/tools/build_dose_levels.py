"""Build the dose-level sheet of Garcia et al. 2023's 19 cancer dose-response analyses.

Source: the cohort-level extraction behind Garcia L et al., Br J Sports Med 2023 (doi
10.1136/bjsports-2022-105669), file ``data/R_variables_March23.csv`` of the GitHub repository
``meta-analyses/meta-analysis``. The rules that turn that file into the model-ready tables of the
paper's code (``script/init.R``, ``script/analysis.R``, ``script/all-functions.R``) are written out,
with the lines they were read from, in ``extraction/_staging/DOSE_RULES.md``; each function below
names the rule it follows.

Usage::

    .venv/bin/python extraction/tools/build_dose_levels.py [--csv PATH] [--out DIR]

writes ``DIR/dose_levels.csv`` (default ``extraction/_staging``).
"""
from __future__ import annotations

import argparse
import csv
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CSV = ROOT.parent / "shared/reference-data/garcia2023-extraction/R_variables_March23.csv"
FILE_COMMIT = "82d789b88480419fd8e374032619579e4bfb53c2"
HEAD_COMMIT = "0afc735e57ba7f92e2128b931ebe7e32685d747b"
SOURCE_URL = "github:meta-analyses/meta-analysis/data/R_variables_March23.csv"
EXTRACTED_BY = "agent-dose"
EXTRACTED_ON = "2026-12-08"

COLUMNS = ["study_id", "study", "year", "cohort", "design", "population", "outcome_key", "cancer_site", "outcome", "sex", "measure", "dose", "estimate", "ci_lower", "ci_upper", "cases", "n", "person_years", "type", "n_derived", "person_years_derived", "cases_derived", "derivation", "referent", "follow_up_years", "adjusted_for", "source_location", "source_url", "quote", "extracted_by", "extracted_on", "checked_by", "checked_on", "notes"]


@dataclass(frozen=True)
class Outcome:
    """One of the paper's 19 cancer analyses: spec key, CSV outcome, analysis type, site."""

    key: str
    csv_outcome: str  # after init.R's sentence-case of `outcome`
    analysis_type: str  # "Both" = the paper's "fatal-and-non-fatal", "Fatal" = mortality
    cancer_site: str
    repo_file: str  # name of the repository's model-ready table (data/csv/main-<...>.csv)

    @property
    def outcome(self) -> str:
        return "cancer_incidence" if self.analysis_type == "Both" else "cancer_mortality"


def _incidence(key: str, csv_outcome: str, site: str, stem: str) -> Outcome:
    return Outcome(key, csv_outcome, "Both", site, f"main-{stem}-fatal-and-non-fatal.csv")


def _mortality(key: str, csv_outcome: str, site: str, stem: str) -> Outcome:
    return Outcome(key, csv_outcome, "Fatal", site, f"main-{stem}-fatal.csv")


OUTCOMES = (
    _incidence("all-cancer", "All-cause cancer", "all_sites", "all-cause-cancer"),
    _incidence("bladder", "Bladder cancer", "bladder", "bladder-cancer"),
    _incidence("breast", "Breast cancer", "breast", "breast-cancer"),
    _incidence("colon", "Colon cancer", "colon", "colon-cancer"),
    _incidence("endometrial", "Endometrial cancer", "endometrial", "endometrial-cancer"),
    _incidence("esophageal", "Esophageal cancer", "esophageal", "esophageal-cancer"),
    _incidence("gastric-cardia", "Gastric cardia cancer", "gastric_cardia", "gastric-cardia-cancer"),
    _incidence("head-and-neck", "Head and neck cancer", "head_and_neck", "head-and-neck-cancer"),
    _incidence("kidney", "Kidney cancer", "kidney", "kidney-cancer"),
    _incidence("liver", "Liver cancer", "liver", "liver-cancer"),
    _incidence("lung", "Lung cancer", "lung", "lung-cancer"),
    _incidence("myeloid-leukaemia", "Myeloid leukemia", "myeloid_leukemia", "myeloid-leukemia"),
    _incidence("myeloma", "Myeloma", "myeloma", "myeloma"),
    _incidence("prostate", "Prostate cancer", "prostate", "prostate-cancer"),
    _incidence("rectum", "Rectum cancer", "rectum", "rectum-cancer"),
    _mortality("all-cancer-mortality", "All-cause cancer", "all_sites", "all-cause-cancer"),
    _mortality("breast-mortality", "Breast cancer", "breast", "breast-cancer"),
    _mortality("lung-mortality", "Lung cancer", "lung", "lung-cancer"),
    _mortality("prostate-mortality", "Prostate cancer", "prostate", "prostate-cancer"),
)
SEX = {"1": "male", "2": "female", "3": "both"}
SEX_LABEL = {"1": "men", "2": "women", "3": ""}


# --- reading -------------------------------------------------------------------------------

def r_numeric(text: str) -> float:
    """R's ``as.numeric`` of a CSV cell: a number, else NaN (e.g. '12,608', '0,59', '')."""
    text = text.strip()
    if not text or text.lower() in {"nan", "inf", "-inf", "infinity"}:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


def sentence_case(text: str) -> str:
    """init.R: ``trimws`` then ``stri_trans_totitle(type = 'sentence')`` of `outcome`."""
    text = text.strip()
    return text[:1].upper() + text[1:].lower()


def read_csv_lines(path: Path) -> pd.DataFrame:
    """Every data line of the CSV: its cells (as text), physical line number and verbatim text."""
    raw = path.read_bytes().decode("latin-1")
    lines = raw.splitlines()
    header = next(csv.reader([lines[0]]))
    header[-1] = header[-1] or "_unnamed"
    records = []
    for number, text in enumerate(lines[1:], start=2):
        cells = next(csv.reader([text]))
        record = dict(zip(header, cells))
        record["_line"] = number
        record["_text"] = text
        records.append(record)
    return pd.DataFrame.from_records(records)


# --- init.R: numbers, type, derived person-years and persons -------------------------------

def prepare(raw: pd.DataFrame) -> pd.DataFrame:
    """The columns init.R builds from the CSV, with flags for the values it derives."""
    df = raw.copy()
    df["outcome_s"] = df["outcome"].map(sentence_case)
    df["outcome_type_s"] = df["outcome_type"].str.strip()
    for col, src in [("n_baseline_n", "n_baseline"), ("mean_followup_n", "mean_followup"),
                     ("tot_personyrs_n", "tot_personyrs"), ("totalpersons", "n_per_category"),
                     ("personyrs", "person_years_per_category"), ("cases", "cases_per_category"),
                     ("effect", "most_adj_effect"), ("lci_effect", "most_adj_lci"),
                     ("uci_effect", "most_adj_uci"), ("m_met", "m_met_h_wk")]:
        df[col] = df[src].map(r_numeric)
    missing_total = df["tot_personyrs_n"].isna()
    df.loc[missing_total, "tot_personyrs_n"] = (df["mean_followup_n"] * df["n_baseline_n"])[missing_total]
    missing_fu = df["mean_followup_n"].isna()
    df.loc[missing_fu, "mean_followup_n"] = (df["tot_personyrs_n"] / df["n_baseline_n"])[missing_fu]
    df["effect_measure_l"] = df["effect_measure"].str.lower()
    df["type"] = df["effect_measure_l"].map({"hr": "ci", "rr": "ir", "or": "ir"}).fillna("")
    df["dose"] = df["m_met"].map(lambda x: r_round(x, 2))
    for flag in ("n_derived", "person_years_derived", "cases_derived"):
        df[flag] = False
    df["derivation"] = ""
    return _persons_from_person_years_share(df)


def r_round(x: float, digits: int = 0) -> float:
    """R's ``round`` (IEC 60559: halves go to the even neighbour)."""
    if math.isnan(x):
        return x
    return round(x, digits)


def _persons_from_person_years_share(df: pd.DataFrame) -> pd.DataFrame:
    """init.R, 'Populate missing totalpersons': per ref_number, a category without n but with
    person-years gets n = round(personyrs / sum(tot_personyrs of those rows) * n_baseline).
    The sum runs over every such row of the ref_number (all outcomes and strata of the file)."""
    for ref in df["ref_number"].unique():
        rows = ((df["ref_number"] == ref) & df["n_baseline_n"].notna() & df["totalpersons"].isna()
                & df["personyrs"].notna() & df["tot_personyrs_n"].notna())
        if not rows.any():
            continue
        share = df.loc[rows, "personyrs"] / df.loc[rows, "tot_personyrs_n"].sum()
        df.loc[rows, "totalpersons"] = (share * df.loc[rows, "n_baseline_n"]).map(r_round)
        _flag(df, rows, "n_derived", "n_personyears_share")
        rows_py = ((df["ref_number"] == ref) & df["n_baseline_n"].notna() & df["totalpersons"].notna()
                   & df["personyrs"].isna() & df["cases"].notna())
        if rows_py.any():
            share = df.loc[rows_py, "cases"] / df.loc[rows_py, "cases"].sum()
            df.loc[rows_py, "personyrs"] = (share * df.loc[rows_py, "tot_personyrs_n"]).map(r_round)
            _flag(df, rows_py, "person_years_derived", "personyears_cases_share")
    return df


def _flag(df: pd.DataFrame, rows: pd.Series, flag: str, rule: str) -> None:
    df.loc[rows, flag] = True
    df.loc[rows, "derivation"] = df.loc[rows, "derivation"].map(lambda d: f"{d};{rule}" if d else rule)


# --- analysis.R: which rows enter one analysis ---------------------------------------------

def select_rows(df: pd.DataFrame, outcome: Outcome) -> pd.DataFrame:
    """Rows of one analysis: overall == 1, the outcome, and its outcome type; for the
    fatal-and-non-fatal analysis, 'Both' rows plus the 'Fatal', then 'Non-fatal', rows of
    ref_numbers that have no rows yet (analysis.R)."""
    base = df[(df["overall"].str.strip() == "1") & (df["pa_domain_subgroup"].str.strip() == "LTPA")
              & (df["outcome_s"] == outcome.csv_outcome)]
    chosen = base[base["outcome_type_s"] == outcome.analysis_type]
    if outcome.analysis_type == "Both":
        for extra in ("Fatal", "Non-fatal"):
            add = base[(base["outcome_type_s"] == extra) & ~base["ref_number"].isin(chosen["ref_number"])]
            chosen = pd.concat([chosen, add])
    return chosen.copy()


def complete_missing(df: pd.DataFrame) -> pd.DataFrame:
    """all-functions.R ``getMissingVariables(infertotalpersons = TRUE, kcases = FALSE)``:
    RR/OR without n: n = round(person-years / mean follow-up); HR without person-years:
    person-years = n x mean follow-up; any row still without n: n = round(person-years /
    mean follow-up). Adds logrr and se = (log uci - log lci) / (2 x 1.959964)."""
    df = df.copy()
    no_n = df["totalpersons"].isna() | (df["totalpersons"] == 0)
    rr_or = df["effect_measure_l"].isin(["rr", "or"]) & no_n
    _set_n_from_follow_up(df, rr_or)
    no_py = df["personyrs"].isna() | (df["personyrs"] == 0)
    hr = (df["effect_measure_l"] == "hr") & no_py
    df.loc[hr, "personyrs"] = df.loc[hr, "totalpersons"] * df.loc[hr, "mean_followup_n"]
    _flag(df, hr & df["personyrs"].notna(), "person_years_derived", "personyears_n_followup")
    _set_n_from_follow_up(df, df["totalpersons"].isna() | (df["totalpersons"] == 0))
    df["logrr"] = df["effect"].map(math.log)
    df["se"] = (df["uci_effect"].map(math.log) - df["lci_effect"].map(math.log)) / (2 * 1.959963984540054)
    return df


def _set_n_from_follow_up(df: pd.DataFrame, rows: pd.Series) -> None:
    df.loc[rows, "totalpersons"] = (df.loc[rows, "personyrs"] / df.loc[rows, "mean_followup_n"]).map(r_round)
    _flag(df, rows & df["totalpersons"].notna(), "n_derived", "n_personyears_followup")


def drop_unusable(df: pd.DataFrame) -> pd.DataFrame:
    """analysis.R: drop rows without cases, and rows without the size the model needs
    (person-years for HR, persons otherwise)."""
    df = df[df["cases"].notna()]
    hr = df["effect_measure_l"] == "hr"
    no_py = df["personyrs"].isna() | (df["personyrs"] == 0)
    return df[~((hr & no_py) | (~hr & df["totalpersons"].isna()))]


def model_rows(raw: pd.DataFrame, outcome: Outcome) -> pd.DataFrame:
    """The rows of one analysis, as the paper's code feeds them to dosresmeta."""
    return drop_unusable(complete_missing(select_rows(prepare(raw), outcome)))


# --- the sheet -----------------------------------------------------------------------------

def known_studies(root: Path = ROOT) -> dict[str, dict[str, str]]:
    """ref_number -> study_id, study label (without sex suffix), year, cohort, already used in
    extraction/risk/risk_cohorts.csv (its source_location names the ref_number) or named in
    extraction/studies.csv (text 'ref_number N'); year and cohort come from studies.csv."""
    studies = pd.read_csv(root / "extraction/studies.csv", dtype=str, keep_default_na=False)
    by_id = studies.set_index("study_id")
    risk = pd.read_csv(root / "extraction/risk/risk_cohorts.csv", dtype=str, keep_default_na=False)
    known: dict[str, dict[str, str]] = {}
    for _, row in risk.iterrows():
        ref = row["source_location"].split("ref_number ")[1].split(",")[0]
        label = row["study"].removesuffix(" (women)").removesuffix(" (men)")
        known.setdefault(ref, {"study_id": row["study_id"], "study": label})
    for _, row in studies.iterrows():
        text = " ".join(row.values)
        if "ref_number " in text:
            ref = text.split("ref_number ")[1].split(")")[0].split(",")[0].strip()
            known.setdefault(ref, {"study_id": row["study_id"], "study": ""})
    for info in known.values():
        pub = by_id.loc[info["study_id"]] if info["study_id"] in by_id.index else None
        info["year"] = "" if pub is None else pub["year"]
        info["cohort"] = "" if pub is None else pub["cohort"]
        if not info["study"] and pub is not None:
            info["study"] = f"{pub['first_author']} {pub['year']}".strip()
    return known


def new_study(first_author: str, ref: str) -> dict[str, str]:
    """A publication not yet in the sheets: ``<firstauthor>_ref<N>``, label '<Author> (repo ref N)'."""
    author = first_author.strip().rstrip(".").strip()
    surname = author.replace(",", " ").split()[0]
    key = "".join(ch for ch in surname.lower() if ch.isalpha())
    return {"study_id": f"{key}_ref{ref}", "study": f"{author} (repo ref {ref})", "year": "", "cohort": ""}


def fmt_number(x: float) -> str:
    """A derived number as text: integers without decimals, else up to 6 significant decimals."""
    if math.isnan(x):
        return ""
    return str(int(x)) if float(x).is_integer() else f"{x:.6g}"


def fmt_cell(text: str, value: float, derived: bool) -> str:
    """The CSV text where the code uses it as printed, else the code's (derived) value."""
    if derived or (text.strip() and math.isnan(r_numeric(text))):
        return fmt_number(value)
    return text.strip()


def is_referent(row: pd.Series) -> bool:
    """The reference category: estimate 1 and no confidence limits printed."""
    return (row["effect"] == 1 and not row["most_adj_lci"].strip() and not row["most_adj_uci"].strip())


def source_location(row: pd.Series) -> str:
    return (f"data/R_variables_March23.csv (commit {FILE_COMMIT}; repository head {HEAD_COMMIT}), "
            f"line {row['_line']} (ref_number {row['ref_number']}, line_id {row['line_id']})")


def row_notes(row: pd.Series) -> str:
    """What a reader needs to know about one category row."""
    notes = [(f"Repository pa_domain_subgroup={row['pa_domain_subgroup'].strip()}, "
              f"outcome_type={row['outcome_type'].strip()}, overall={row['overall']}, "
              f"effect_measure={row['effect_measure']}; dose = round(m_met_h_wk, 2) as init.R")]
    if row["m_met_h_wk"].strip() != fmt_number(row["dose"]):
        notes.append(f"m_met_h_wk printed {row['m_met_h_wk']}")
    for col, label in [("n_per_category", "n"), ("most_adj_lci", "lower limit"), ("most_adj_uci", "upper limit")]:
        text = row[col].strip()
        if text and math.isnan(r_numeric(text)):
            notes.append(f"CSV prints {label} '{text}', which R's as.numeric reads as NA")
    if row["derivation"]:
        notes.append(f"derived by the paper's code: {row['derivation']} (see DOSE_RULES.md)")
    if math.isnan(row["se"]) and not is_referent(row):
        notes.append("no usable CI: the paper's code gets se = NA for this non-referent row, which "
                     "dosresmeta then takes as a reference row")
    if row["person_years_per_category"].strip() and not float(row["personyrs"]).is_integer():
        notes.append("the model uses person-years rounded to whole years (analysis.R)")
    return "; ".join(notes)


def sheet_rows(raw: pd.DataFrame, known: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    """One sheet row per exposure category of every study in the 19 analyses, in model order."""
    prepared = prepare(raw)
    per_outcome = [(o, drop_unusable(complete_missing(select_rows(prepared, o)))) for o in OUTCOMES]
    sexes = pd.concat([m[["ref_number", "sex_subgroups"]] for _, m in per_outcome]).drop_duplicates()
    multi_sex = set(sexes["ref_number"][sexes["ref_number"].duplicated()])
    out = []
    for outcome, model in per_outcome:
        for _, row in model.iterrows():
            out.append(_sheet_row(outcome, row, known, multi_sex))
    return out


def _sheet_row(outcome: Outcome, row: pd.Series, known: dict, multi_sex: set) -> dict[str, str]:
    ref, sex = row["ref_number"], row["sex_subgroups"].strip()
    study = dict(known.get(ref) or new_study(row["first_author"], ref))
    if ref in multi_sex and SEX_LABEL[sex]:
        study["study"] = f"{study['study']} ({SEX_LABEL[sex]})"
    referent = is_referent(row)
    sex_word = {"1": "men", "2": "women", "3": "men and women"}[sex]
    return {
        **{k: study[k] for k in ("study_id", "study", "year", "cohort")},
        "design": "cohort",
        "population": f"cohort participants ({sex_word}); baseline n {row['n_baseline'].strip()} as coded in repository",
        "outcome_key": outcome.key, "cancer_site": outcome.cancer_site, "outcome": outcome.outcome,
        "sex": SEX[sex], "measure": row["effect_measure"].strip().upper(),
        "dose": fmt_number(row["dose"]),
        "estimate": "1" if referent else row["most_adj_effect"].strip(),
        "ci_lower": "" if referent else fmt_cell(row["most_adj_lci"], row["lci_effect"], False),
        "ci_upper": "" if referent else fmt_cell(row["most_adj_uci"], row["uci_effect"], False),
        "cases": fmt_cell(row["cases_per_category"], row["cases"], bool(row["cases_derived"])),
        "n": fmt_cell(row["n_per_category"], row["totalpersons"], bool(row["n_derived"])),
        "person_years": fmt_cell(row["person_years_per_category"], row["personyrs"],
                                 bool(row["person_years_derived"])),
        "type": row["type"],
        "n_derived": _yes(row["n_derived"]), "person_years_derived": _yes(row["person_years_derived"]),
        "cases_derived": _yes(row["cases_derived"]), "derivation": row["derivation"],
        "referent": _yes(referent),
        "follow_up_years": row["mean_followup"].strip() if not math.isnan(r_numeric(row["mean_followup"])) else "",
        "adjusted_for": "most-adjusted model as coded in the repository (covariates not listed in the file)",
        "source_location": source_location(row), "source_url": SOURCE_URL, "quote": row["_text"],
        "extracted_by": EXTRACTED_BY, "extracted_on": EXTRACTED_ON, "checked_by": "", "checked_on": "",
        "notes": row_notes(row),
    }


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    """UTF-8, '\\n' line endings, fields quoted where needed (PROTOCOL.md)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def build(csv_path: Path = DEFAULT_CSV, out_dir: Path = ROOT / "extraction/_staging") -> Path:
    """Write ``out_dir/dose_levels.csv`` and return its path."""
    rows = sheet_rows(read_csv_lines(csv_path), known_studies())
    path = out_dir / "dose_levels.csv"
    write_csv(path, rows, COLUMNS)
    return path


# --- back from the sheet to the model-ready table (used by the check against the repository) --

MODEL_COLUMNS = ["id", "ref_number", "dose", "RR", "cases", "personyrs", "totalpersons", "type",
                 "lci_effect", "uci_effect"]


def model_table(sheet: pd.DataFrame, outcome_key: str) -> pd.DataFrame:
    """The repository's ``main-<outcome>.csv`` columns rebuilt from the sheet's rows of one
    analysis: id numbers the studies in sheet order, person-years are rounded to whole years
    as analysis.R does before the model, a referent has no CI."""
    rows = sheet[sheet["outcome_key"] == outcome_key]
    ref = rows["source_location"].str.extract(r"ref_number (\d+)")[0].astype(int)
    number = lambda col: pd.to_numeric(rows[col], errors="coerce")
    table = pd.DataFrame({
        "id": pd.factorize(rows["study"])[0] + 1,
        "ref_number": ref,
        "dose": number("dose"),
        "RR": number("estimate"),
        "cases": number("cases"),
        "personyrs": number("person_years").map(r_round),
        "totalpersons": number("n"),
        "type": rows["type"],
        "lci_effect": number("ci_lower"),
        "uci_effect": number("ci_upper"),
    })
    return table.reset_index(drop=True)[MODEL_COLUMNS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--out", type=Path, default=ROOT / "extraction/_staging")
    args = parser.parse_args()
    print(build(args.csv, args.out))


if __name__ == "__main__":
    main()

"""Merge the Garcia et al. 2023 evidence (dose levels, highest vs lowest, publication identification)
from ``extraction/_staging`` into the shipped sheets.

Inputs (``extraction/_staging``, git-ignored; see the audit trail in ``extraction/checks``):

- ``dose_levels.csv`` (``build_dose_levels.py``) and ``risk_cohorts_new.csv``
  (``build_highest_vs_lowest.py``), second-read in ``dose_verdicts.csv`` by checker-dose-1
  (``checks/garcia-dose-checker-dose-1.md``);
- ``refs_identified_part{1,2,3}.csv`` (publication of each repository ref_number), second-read in
  ``refs_verdicts_checker-refs-{1,2}.csv`` (``checks/garcia-refs-checker-refs-{1,2}.md``);
- ``DOSE_RULES.md``, ``DOSE_DIFFS.md``, ``HVL_DIFFS.md``, ``dictionary_additions.csv``.

Outputs: ``studies.csv`` (columns ``quote``, ``checked_by`` added), ``risk/dose_levels.csv``,
``risk/risk_cohorts.csv`` (replaced), ``dose`` -> ``dose_description`` in every result sheet,
``dictionary.csv``, ``checks/garcia-dose-rules.md``, ``checks/garcia-dose-diffs.md`` and the section
"Garcia 2023 cohorts (2026-12-08)" of ``MISSING.md``.

Rules applied (no number or identifier is made up here; everything is copied from the inputs):

- A publication counts as identified when the identification file says ``found = yes`` and a
  second reader's verdict is ACCEPT or ACCEPT WITH CHANGES; every field change of the verdict is
  applied (``field=`` empties the field). REJECT, ``found = no``: not identified.
- ``study_id`` is the one the sheets use (the verdicts' ``study_id=`` changes are not needed: no id is
  renamed).
- Existing studies.csv rows keep their values. An existing ``*_ref<N>`` row without DOI and PMID is
  updated from an accepted identification; other existing rows only get empty cells filled. Where
  the accepted identification (after the verdict's changes) disagrees with a value an existing row
  keeps, the row gets no ``checked_by`` and the conflict is listed in MISSING.md.
- Labels: a placeholder ``Author (repo ref N)`` becomes ``Surname Year`` (+ cohort name if it is at
  most 30 characters), keeping the `` (women)``/`` (men)`` suffix; letters a, b, ... are added to the
  year where two studies would get the same label; without a year the placeholder stays.

Usage::

    .venv/bin/python extraction/tools/merge_garcia.py

Re-running it gives the same files (it reads the staging files and the sheets' pre-merge state is
not needed: the merge of studies.csv is keyed on study_id and the sections it writes are replaced).
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "extraction"
STAGING = EX / "_staging"
CHECKED_ON = "2026-12-08"
DOSE_CHECKER = "checker-dose-1"
SOURCE_URL = "github:meta-analyses/meta-analysis/data/R_variables_March23.csv"
RESULT_DIRS = ("risk", "survival", "depression", "cachexia")
IDENT_FIELDS = ("first_author", "year", "title", "journal", "doi", "pmid", "cohort")
# The paper's code adds the Fatal (then Non-fatal) lines of a study without incidence lines to the
# incidence analyses. Arem 2014 (ref 332, NIH-AARP cancer mortality) thereby enters 13 incidence
# analyses that already hold an NIH-AARP incidence paper: the same cohort twice, which PROTOCOL.md and
# `meta validate` (cohort-twice) do not allow in a result sheet. True: such a mortality stand-in row is
# left out of risk_cohorts.csv (the incidence row of the same cohort is kept) and listed in MISSING.md;
# the dose-level sheet keeps the paper's rows as they are. False: keep all 219 rows.
DROP_DUPLICATE_COHORT_STANDINS = True
# Placeholder labels of the 91 rows kept from the old risk sheet are relabelled like every other
# placeholder, so that one study_id + sex has one label in both sheets (set to True to keep them).
KEEP_KEPT_PLACEHOLDER_LABELS = False
PLACEHOLDER = re.compile(r"^(?P<author>.*) \(repo ref (?P<ref>\d+)\)(?P<sex> \((?:women|men)\))?$")
SEX_SUFFIX = re.compile(r" \((?:women|men)\)$")


# --- reading and writing ----------------------------------------------------------------------

def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def write(path: Path, frame: pd.DataFrame) -> None:
    """UTF-8, '\\n' line endings, csv-module quoting (PROTOCOL.md)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(list(frame.columns))
        writer.writerows(frame.astype(str).values.tolist())


def ref_of(location: str) -> str:
    return re.search(r"ref_number (\d+)", location).group(1)


def norm_author(name: str) -> str:
    """The CSV's first_author as the existing ``_ref`` rows write it (trailing '.'/',' dropped)."""
    return name.strip().rstrip(".,").strip()


def surname(name: str) -> str:
    name = norm_author(name)
    if "," in name:
        return name.split(",")[0].strip()
    return name.replace(" et al", "").split()[0]


# --- publication identification ---------------------------------------------------------------

def parse_changes(text: str) -> dict[str, str]:
    changes = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        field, value = part.split("=", 1)
        changes[field.strip()] = value.strip()
    return changes


def identifications() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(identification rows with verdicts applied, indexed by ref_number; the verdicts)."""
    ident = pd.concat([read(STAGING / f"refs_identified_part{p}.csv") for p in (1, 2, 3)], ignore_index=True)
    verdicts = pd.concat([read(STAGING / f"refs_verdicts_checker-refs-{c}.csv") for c in (1, 2)], ignore_index=True)
    assert not ident["ref_number"].duplicated().any() and not verdicts["ref_number"].duplicated().any()
    ident = ident.set_index("ref_number")
    ident["verdict"], ident["checked_by"], ident["changes"] = "", "", ""
    for _, v in verdicts.iterrows():
        ref = v["ref_number"]
        assert ident.loc[ref, "found"] == "yes", ref
        ident.loc[ref, ["verdict", "checked_by", "changes"]] = [v["verdict"], v["checker"], v["field_changes"]]
        if v["verdict"] in ("ACCEPT", "ACCEPT WITH CHANGES"):
            for field, value in parse_changes(v["field_changes"]).items():
                if field != "study_id":  # the sheets' study_id is kept (no id is renamed)
                    ident.loc[ref, field] = value
    unchecked = ident[(ident["found"] == "yes") & (ident["verdict"] == "")]
    assert unchecked.empty, list(unchecked.index)
    ident["identified"] = ident["verdict"].isin(["ACCEPT", "ACCEPT WITH CHANGES"])
    ident["first_author"] = ident["first_author"].map(norm_author)
    return ident, verdicts


# --- studies.csv ------------------------------------------------------------------------------

def _join_urls(*urls: str) -> str:
    parts: list[str] = []
    for url in urls:
        for part in filter(None, (u.strip() for u in url.split(" || "))):
            if part not in parts:
                parts.append(part)
    return " || ".join(parts)


def _same(a: str, b: str) -> bool:
    simplify = lambda s: re.sub(r"[^a-z0-9]", "", s.lower())
    return simplify(a) == simplify(b)


def placeholder_cohort(author: str, ref: str) -> str:
    return f"not named in repository (first author {author}; repository ref_number {ref})"


def merge_studies(studies: pd.DataFrame, sheet_ids: dict[str, str], csv_authors: dict[str, str],
                  ident: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """studies.csv with quote/checked_by, a row for every study_id of the new sheets."""
    studies = studies.copy()
    for col in ("quote", "checked_by"):
        if col not in studies.columns:
            studies[col] = ""
    log = {"added": [], "updated": [], "filled": [], "conflicts": [], "unidentified": [], "checked": []}
    by_id = {sid: i for i, sid in enumerate(studies["study_id"])}
    new_rows = []
    for sid, ref in sorted(sheet_ids.items(), key=lambda kv: int(kv[1])):
        rec = ident.loc[ref] if ref in ident.index else None
        identified = rec is not None and bool(rec["identified"])
        if sid not in by_id:
            row = {c: "" for c in studies.columns}
            row.update(study_id=sid, design="cohort", population="cohort participants (see result rows)")
            if identified:
                row.update({f: rec[f] for f in IDENT_FIELDS})
                row.update(source_url=rec["source_url"], quote=rec["quote"], checked_by=rec["checked_by"])
                log["checked"].append(sid)
            else:
                author = norm_author(csv_authors[ref])
                row.update(first_author=author, cohort=placeholder_cohort(author, ref), source_url=SOURCE_URL)
                log["unidentified"].append((sid, ref))
            new_rows.append(row)
            log["added"].append(sid)
            continue
        i = by_id[sid]
        old = studies.loc[i]
        if not identified:
            if old["cohort"].startswith("not named in repository") or not (old["doi"] or old["pmid"]):
                log["unidentified"].append((sid, ref))
            continue
        is_ref_row = bool(re.search(r"_ref\d+$", sid)) and not (old["doi"] or old["pmid"])
        changed = parse_changes(rec["changes"])
        conflicts = []
        for f in ("year", "title", "journal", "doi", "pmid"):
            new, kept = rec[f], old[f]
            if kept and ((new and not _same(new, kept)) or (not new and f in changed)):
                if is_ref_row and new:
                    continue  # overwritten below by the accepted identification
                conflicts.append((f, kept, new))
        if is_ref_row:
            for f in IDENT_FIELDS:
                if f == "cohort" and not rec[f]:
                    continue
                if rec[f] or f not in changed:
                    if rec[f]:
                        studies.loc[i, f] = rec[f]
            log["updated"].append(sid)
        else:
            filled = [f for f in ("year", "title", "journal", "doi", "pmid") if not old[f] and rec[f]]
            for f in filled:
                studies.loc[i, f] = rec[f]
            if old["cohort"].startswith("not named in repository") and rec["cohort"]:
                studies.loc[i, "cohort"] = rec["cohort"]
                filled.append("cohort")
            if filled:
                log["filled"].append((sid, filled))
        studies.loc[i, "source_url"] = _join_urls(old["source_url"], rec["source_url"])
        studies.loc[i, "quote"] = rec["quote"]
        if conflicts:
            log["conflicts"].append((sid, ref, rec["checked_by"], rec["changes"], conflicts))
        else:
            studies.loc[i, "checked_by"] = rec["checked_by"]
            log["checked"].append(sid)
    if new_rows:
        studies = pd.concat([studies, pd.DataFrame(new_rows, columns=studies.columns)], ignore_index=True)
    return studies, log


# --- labels, year, cohort ---------------------------------------------------------------------

def make_labels(dose: pd.DataFrame, risk: pd.DataFrame, studies: pd.DataFrame, kept: pd.Series) -> dict:
    """(study_id, old label) -> new label for every placeholder label of the two sheets.

    Letters: all study_ids of the two sheets whose first author's surname and year are the same
    (e.g. thune_ref156 and thune1997, both 'Thune 1997') get a, b, ... in order of repository
    ref_number; only placeholder labels are rewritten, so an existing label keeps its text."""
    pub = studies.set_index("study_id")
    both = pd.concat([dose, risk])
    ref = {sid: int(ref_of(loc)) for sid, loc in zip(both["study_id"], both["source_location"])}
    stems: dict[str, list] = {}
    for sid in ref:
        if pub.loc[sid, "year"]:
            stems.setdefault(f"{surname(pub.loc[sid, 'first_author'])} {pub.loc[sid, 'year']}", []).append(sid)
    letter = {}
    for ids in stems.values():
        if len(ids) > 1:
            for k, sid in enumerate(sorted(ids, key=ref.get)):
                letter[sid] = "abcdefghij"[k]
    relabel = pd.concat([dose[["study_id", "study"]],
                         risk.loc[~kept if KEEP_KEPT_PLACEHOLDER_LABELS else risk.index, ["study_id", "study"]]])
    out = {}
    for _, r in relabel.drop_duplicates().iterrows():
        m = PLACEHOLDER.match(r["study"])
        sid = r["study_id"]
        year, cohort = pub.loc[sid, "year"], pub.loc[sid, "cohort"]
        if not m or not year:
            continue
        tail = f" {cohort}" if cohort and len(cohort) <= 30 and not cohort.startswith("not named") else ""
        out[(sid, r["study"])] = (f"{surname(pub.loc[sid, 'first_author'])} {year}{letter.get(sid, '')}"
                                  f"{tail}{m.group('sex') or ''}")
    return out


def fill_identity(sheet: pd.DataFrame, labels: dict, studies: pd.DataFrame, relabel: pd.Series) -> pd.DataFrame:
    pub = studies.set_index("study_id")
    sheet = sheet.copy()
    for i, r in sheet.iterrows():
        sid = r["study_id"]
        if relabel[i] and (sid, r["study"]) in labels:
            sheet.loc[i, "study"] = labels[(sid, r["study"])]
        if not r["year"]:
            sheet.loc[i, "year"] = pub.loc[sid, "year"]
        if pub.loc[sid, "cohort"]:  # studies.csv decides (e.g. schnohr_ref33: cohort name now read)
            sheet.loc[i, "cohort"] = pub.loc[sid, "cohort"]
    return sheet


def apply_dose_verdicts(sheet: pd.DataFrame, verdicts: pd.DataFrame, name: str) -> pd.DataFrame:
    sheet = sheet.copy()
    v = verdicts[verdicts["sheet"] == name]
    assert len(v) == len(sheet), name
    for _, r in v.iterrows():
        i = int(r["row"]) - 1
        if r["verdict"] == "PASS" and not sheet.loc[i, "checked_by"]:
            sheet.loc[i, ["checked_by", "checked_on"]] = [DOSE_CHECKER, CHECKED_ON]
    return sheet


# --- dictionary, notes, MISSING.md ------------------------------------------------------------

def merge_dictionary() -> None:
    path = EX / "dictionary.csv"
    dic = read(path)
    additions = read(STAGING / "dictionary_additions.csv")
    if "dose_description" not in set(dic["column"]):
        dic.loc[dic["column"] == "dose", "column"] = "dose_description"
    else:
        dic = dic[dic["column"] != "dose"]  # re-run: the numeric entry is re-added below
    additions["required"] = additions["required"].where(~additions["required"].str.contains("dose-level"), "no")
    additions["description"] = (additions["description"]
                                .str.replace("extraction/_staging/DOSE_RULES.md", "extraction/checks/garcia-dose-rules.md", regex=False)
                                .str.replace("In result sheets 'dose' stays the descriptive text of the compared category",
                                             "In result sheets the descriptive text of the compared category is in dose_description",
                                             regex=False))
    dic = dic[~dic["column"].isin(set(additions["column"]) - {"dose"})]
    assert {"quote", "checked_by"} <= set(dic["column"])
    write(path, pd.concat([dic, additions], ignore_index=True)[list(dic.columns)])


def rename_dose_columns() -> list[str]:
    done = []
    for folder in RESULT_DIRS:
        for path in sorted((EX / folder).glob("*.csv")):
            if path.name == "dose_levels.csv":
                continue
            sheet = read(path)
            if "dose" in sheet.columns:
                write(path, sheet.rename(columns={"dose": "dose_description"}))
                done.append(str(path.relative_to(ROOT)))
    return done


RULE3_OLD = "- Rows stay in file order; studies are numbered in order of first appearance (see rule 7)."
RULE3_NEW = ("- Order (corrected after checker-dose-1's second reading): rows do **not** simply stay in file "
             "order. Within an analysis the code keeps the `Both` rows first, then the `Fatal` and then the "
             "`Non-fatal` stand-ins, and `getMissingVariables` regroups them by ref_number "
             "(`for(i in unique(df$ref_number))`), so the order differs from file order in 12 of the 19 "
             "analyses. The sheet follows the code's (and the repository tables') order; studies are numbered "
             "in order of first appearance (see rule 7).")
RULE6_OLD = ("Greenland-Longnecker), ...)` with knots at the 0, 37.5 and 75 % quantiles of the dose (75 % of\n"
             "person-years, `get_last_knot`).")
RULE6_NEW = ("Greenland-Longnecker), ...)`. Knots (corrected after checker-dose-1's second reading): "
             "`quantile(pa$dose, c(0, q/2, q))` with `q = get_last_knot(...)[2] = ecdf(dose)(max_dose)`, a "
             "data-dependent percentile (the top group must hold at least 25 % of person-years), not fixed "
             "0 / 37.5 / 75 % quantiles; analysis.R also has a third fallback that raises `nq` from 0.75 to 1, "
             "and skips outputs with fewer than 4 studies (`if (length(unique(dataset$id)) < 4) next`).")


def write_notes() -> None:
    rules = (STAGING / "DOSE_RULES.md").read_text(encoding="utf-8")
    assert RULE3_OLD in rules and RULE6_OLD in rules
    rules = rules.replace(RULE3_OLD, RULE3_NEW).replace(RULE6_OLD, RULE6_NEW)
    rules = rules.replace("_staging/", "").replace("DOSE_DIFFS.md", "garcia-dose-diffs.md")
    rules = rules.replace("# How Garcia", "# How Garcia", 1)
    header = ("<!-- Copied from extraction/_staging/DOSE_RULES.md by extraction/tools/merge_garcia.py, with the two "
              "corrections of checks/garcia-dose-checker-dose-1.md (rule 3: order; rule 6: knots). -->\n\n")
    (EX / "checks/garcia-dose-rules.md").write_text(header + rules, encoding="utf-8")
    diffs = (STAGING / "DOSE_DIFFS.md").read_text(encoding="utf-8").rstrip("\n")
    hvl = (STAGING / "HVL_DIFFS.md").read_text(encoding="utf-8").rstrip("\n")
    body = (diffs + "\n\n" + hvl + "\n").replace("DOSE_RULES.md", "garcia-dose-rules.md")
    body = body.replace("HVL_DIFFS.md", "the second part of this file")
    text = ("<!-- extraction/_staging/DOSE_DIFFS.md followed by extraction/_staging/HVL_DIFFS.md, copied by "
            "extraction/tools/merge_garcia.py; the rules are in garcia-dose-rules.md. The highest-vs-lowest "
            "counts below are those of the build (219 rows); the merge leaves 13 more out of "
            "risk/risk_cohorts.csv, see MISSING.md, 'Garcia 2023 cohorts'. -->\n\n" + body)
    (EX / "checks/garcia-dose-diffs.md").write_text(text, encoding="utf-8")


MISSING_TITLE = "## Garcia 2023 cohorts (2026-12-08)"


def missing_section(ident: pd.DataFrame, log: dict, sheet_ids: dict, csv_authors: dict) -> str:
    used_refs = set(sheet_ids.values())
    L = [MISSING_TITLE, "",
         "Publications behind the cohorts of Garcia et al. 2023's 19 cancer dose-response analyses "
         "(`risk/dose_levels.csv`, `risk/risk_cohorts.csv`), looked up by repository `ref_number` "
         "(identification files and second readings: `checks/garcia-refs-checker-refs-1.md`, "
         "`checks/garcia-refs-checker-refs-2.md`; merged by `tools/merge_garcia.py`). A publication "
         "counts as identified only where a second reader accepted it; the study then has its page "
         "quote and `checked_by` in `studies.csv`. Unidentified studies keep the repository's first "
         "author, no year/title/DOI/PMID, and the cohort `not named in repository (...)`.", "",
         "### Not identified (found = no): what was searched", ""]
    for ref, r in ident[ident["found"] == "no"].iterrows():
        where = "used by the sheets" if ref in used_refs else "not in the 19 main analyses"
        L.append(f"- **ref {ref}, {r['first_author']}** ({where}): {r['notes']}")
    L += ["", "### Identifications rejected or ambiguous (not used)", ""]
    for ref, r in ident[ident["verdict"] == "REJECT"].iterrows():
        why = {"87": "checker-refs-1: title and numbers match (n 34,637, 124 kidney cancers), but no page "
                     "read shows the first author, the journal or the year for this title, and there is no "
                     "DOI or PMID (author and year rest on 'Nicodemus et al, 2004' in a text without the "
                     "title); found = ambiguous.",
               "110": "checker-refs-1: neither title nor any author name was shown on the page read or by "
                      "two further queries, no DOI/PMID; found = ambiguous. The numbers match (n 40,318, "
                      "16.4 y, 1673 vs 1671 cases); also the CSV codes outcome_type 'Fatal' for an "
                      "incidence paper.",
               "290": "checker-refs-2: three page searches returned no page for this paper and the "
                      "extractor's proxied PubMed page never came back (unverifiable, not shown wrong); even "
                      "on the extractor's evidence the first author and the address-only PMID are "
                      "unconfirmed. Needs a third reader."}[ref]
        L.append(f"- **ref {ref}, {r['first_author']}** (candidate {r['study_id']}, {r['year']}): {why} "
                 f"Extractor's notes: {r['notes']}")
    if log["conflicts"]:
        L += ["", "### Accepted identifications that disagree with an existing studies.csv row", "",
              "The verdict empties a field that the existing row holds from an earlier reading (a PubMed "
              "address, or the repository's legacy combined dataset for the year; see the row's "
              "`source_url`). The existing value is kept, as the merge keeps existing rows' values; empty "
              "cells of the row were filled from the accepted identification, but the row gets no "
              "`checked_by` from this identification until the lead decides (keep the value with its "
              "earlier source, or empty it as the verdict says):", ""]
        for sid, ref, checker, changes, conflicts in log["conflicts"]:
            what = "; ".join(f"{f}: kept '{k}', verdict gives '{n}'" for f, k, n in conflicts)
            L.append(f"- `{sid}` (ref {ref}; {checker}: `{changes}`): {what}.")
    dropped = log["standins_dropped"]
    if len(dropped):
        L += ["", f"### Highest-vs-lowest rows left out: the same cohort twice ({len(dropped)})", "",
              "The paper's code adds the `Fatal` lines of a study without incidence (`Both`) lines to the "
              "incidence analyses (`checks/garcia-dose-rules.md`, rule 3). For the rows below the cohort is "
              "then already in the analysis through an incidence paper, so a mortality result of the same "
              "cohort would enter twice (PROTOCOL.md: one cohort once per analysis; `meta validate`: "
              "cohort-twice). They were built and second-read (checker-dose-1 PASS) but are left out of "
              "`risk/risk_cohorts.csv`; the incidence row of the same cohort is kept. The dose-level sheet "
              "keeps them, as the paper's model uses them (switch: `DROP_DUPLICATE_COHORT_STANDINS` in "
              "`tools/merge_garcia.py`).", ""]
        for _, r in dropped.iterrows():
            L.append(f"- `{r['study_id']}` ({r['study']}), {r['cancer_site']}, {r['sex']}: HR {r['estimate']} "
                     f"({r['ci_lower']}-{r['ci_upper']}), cohort {r['cohort']}; {r['source_location'].split('), ')[-1]}")
    L += ["", "### Highest-vs-lowest rows of the old sheet left out (23)", "",
          "The refreshed `risk/risk_cohorts.csv` holds one row per study and sex of the paper's main "
          f"analyses (219 built, {219 - len(dropped)} kept, see above). 23 rows of the earlier sheet are "
          "not in those analyses and are left out "
          "(details in `checks/garcia-dose-diffs.md`):", "",
          "- 21 sex strata (`overall = 0`) of cohorts whose combined result (`overall = 1`, both sexes) "
          "the paper uses instead: Nilsen 2008 (colon, rectum; men and women), Schnohr ref 33 (colon, "
          "lung), Thune 1996 (colon, rectum), Howard 2008 (rectum), Rangul ref 352 (lung), Steindorf "
          "2006 (lung), Thune 1997 (lung), Setiawan ref 72 (kidney, men).",
          "- Holick ref 1711 (bladder, men) and ref 1712 (bladder, women): `overall = 0`, and the paper's "
          "main bladder analysis has no row of these ref_numbers.",
          "- Walter ref 207 (myeloid leukaemia) has dose levels but no highest-vs-reference row: the CSV "
          "prints the lower limit '0,59' (decimal comma, NA in R) and no category with estimate 1.", "",
          "### Oddities of R_variables_March23.csv noticed by the readers (not corrected)", "",
          "- ref 230 (Rosenberg 2014, BWHS): n_baseline 44,078 vs 44,708 printed in the paper "
          "(transposed digits?).",
          "- ref 335 (Kunzmann 2018, UK Biobank): n_baseline 360,033 vs 359,033 printed.",
          "- ref 347 (Jee 2018): total_cases 2,597,763 is person-years of a stratum, not a case count.",
          "- ref 264 (Rockhill 2001): mean follow-up 26 y for a 2001 paper with a 1980 baseline.",
          "- refs 85 (Bardia 2006) and 110 (Silvera 2006): coded outcome_type 'Fatal' although the papers "
          "report incident breast cancer.",
          "- ref 207 (Walter 2013): most-adjusted lower limit printed '0,59' (decimal comma), read as NA "
          "by the paper's code.",
          "- refs 351 and 321: n_per_category printed with thousands separators or text (\"12,608\", "
          "\"24962 (for 7-21)\"), read as NA by the paper's code, so n is derived "
          "(`n_personyears_share`, about 1/k of the category size; see `checks/garcia-dose-rules.md`).",
          "- Kept highest-vs-lowest rows whose values differ from the rule (second reader's FAIL, old "
          "extractor's documented choice, kept): ma_ref21 breast events_total empty (rule 5886), "
          "chang2006 breast ci_upper 1.05 (CSV 1.5; from the legacy combined dataset), oyeyemi_ref355 "
          "rectum events_total empty (rule 885).", ""]
    return "\n".join(L)


def write_missing(section: str) -> None:
    path = EX / "MISSING.md"
    text = path.read_text(encoding="utf-8")
    if MISSING_TITLE in text:
        text = text.split("\n---\n\n" + MISSING_TITLE)[0].rstrip("\n") + "\n"
    path.write_text(text.rstrip("\n") + "\n\n---\n\n" + section, encoding="utf-8")


# --- main -------------------------------------------------------------------------------------

def main() -> None:
    dose = read(STAGING / "dose_levels.csv")
    risk_new = read(STAGING / "risk_cohorts_new.csv")
    dose_verdicts = read(STAGING / "dose_verdicts.csv")
    studies = read(EX / "studies.csv")
    ident, _ = identifications()
    to_identify = read(STAGING / "refs_to_identify.csv").set_index("ref_number")

    sheet_ids: dict[str, str] = {}
    for sheet in (dose, risk_new):
        for sid, loc in zip(sheet["study_id"], sheet["source_location"]):
            assert sheet_ids.setdefault(sid, ref_of(loc)) == ref_of(loc), sid
    csv_authors = {ref: to_identify.loc[ref, "first_author"] for ref in sheet_ids.values()}

    studies, log = merge_studies(studies, sheet_ids, csv_authors, ident)
    write(EX / "studies.csv", studies)

    kept = risk_new["extracted_by"] != "agent-dose"  # rows carried over from the old sheet
    labels = make_labels(dose, risk_new, studies, kept)
    dose = fill_identity(dose, labels, studies, pd.Series(True, index=dose.index))
    relabel = ~kept if KEEP_KEPT_PLACEHOLDER_LABELS else pd.Series(True, index=risk_new.index)
    risk = fill_identity(risk_new, labels, studies, relabel)
    dose = apply_dose_verdicts(dose, dose_verdicts, "dose_levels")
    risk = apply_dose_verdicts(risk, dose_verdicts, "risk_cohorts_new")
    check_labels(dose)
    if DROP_DUPLICATE_COHORT_STANDINS:
        risk, log["standins_dropped"] = drop_duplicate_standins(risk)
    else:
        log["standins_dropped"] = pd.DataFrame(columns=risk.columns)
    per_analysis = risk.groupby(["outcome", "cancer_site", "study"])["study_id"].nunique()
    assert (per_analysis == 1).all(), per_analysis[per_analysis > 1]
    write(EX / "risk/dose_levels.csv", dose)
    write(EX / "risk/risk_cohorts.csv", risk)
    renamed = rename_dose_columns()
    merge_dictionary()
    write_notes()
    write_missing(missing_section(ident, log, sheet_ids, csv_authors))

    print(f"studies.csv: {len(log['added'])} added, {len(log['updated'])} _ref rows updated, "
          f"{len(log['filled'])} rows with empty cells filled, {len(log['conflicts'])} conflicts, "
          f"{len(log['checked'])} rows with checked_by from a refs verdict")
    ids = set(sheet_ids)
    pub = studies[studies["study_id"].isin(ids)]
    print(f"sheet study_ids: {len(ids)}; with DOI or PMID: {((pub['doi'] != '') | (pub['pmid'] != '')).sum()}; "
          f"unidentified (placeholder cohort): {pub['cohort'].str.startswith('not named in repository').sum()}")
    print(f"dose_levels.csv: {len(dose)} rows ({(dose['checked_by'] != '').sum()} checked); risk_cohorts.csv: "
          f"{len(risk)} rows ({(risk['checked_by'] != '').sum()} checked; "
          f"{len(log['standins_dropped'])} duplicate-cohort stand-ins left out)")
    print("renamed dose -> dose_description in:", ", ".join(renamed))
    for sid, ref, checker, changes, conflicts in log["conflicts"]:
        print("CONFLICT", sid, ref, checker, changes, conflicts)


def drop_duplicate_standins(risk: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of an incidence analysis taken from a Fatal/Non-fatal line whose cohort already gives an
    incidence (outcome_type=Both) row in the same analysis (cancer_site and sex)."""
    otype = risk["notes"].str.extract(r"outcome_type=([A-Za-z-]+)")[0]
    standin = (risk["outcome"] == "cancer_incidence") & otype.isin(["Fatal", "Non-fatal"])
    named = ~risk["cohort"].str.startswith("not named in repository") & (risk["cohort"] != "")
    key = ["outcome", "cancer_site", "sex", "cohort"]
    has_both = risk[~standin & named].set_index(key).index
    drop = standin & named & risk.set_index(key).index.isin(has_both)
    return risk[~drop].reset_index(drop=True), risk[drop]


def check_labels(dose: pd.DataFrame) -> None:
    """Labels unique within each analysis; one label per study_id + sex across analyses."""
    per_key = dose.groupby(["outcome_key", "study"])["study_id"].nunique()
    assert (per_key == 1).all(), per_key[per_key > 1]
    per_study = dose.groupby(["study_id", "sex"])["study"].nunique()
    assert (per_study == 1).all(), per_study[per_study > 1]


if __name__ == "__main__":
    main()

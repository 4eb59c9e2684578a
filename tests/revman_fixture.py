"""A RevMan 5 review file written for the tests, from the reference datasets (reference/datasets).

Its structure is RevMan 5's (COCHRANE_REVIEW > ANALYSES_AND_DATA > COMPARISON > *_OUTCOME >
*_SUBGROUP > *_DATA, STUDY elements with NAME and YEAR). The pooled results each outcome states
were computed independently, by metafor 3.8-1: the overall ones are rows of
reference/metafor_reference.csv; the subgroup and Mantel-Haenszel ones come from

    es <- escalc("RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
    rma(yi, vi, data = es, subset = alloc == "random", method = "DL")
    rma(yi, vi, data = es, subset = alloc != "random", method = "DL")
    rma.mh(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
"""

from __future__ import annotations

import csv
import math
from html import escape

from meta.stats.distributions import norm_isf

from .conftest import REFERENCE

# metafor values not in metafor_reference.csv (see the module docstring): log scale, I2 in %.
BCG_RANDOM = {"estimate": -1.004161353998235, "ci_lower": -1.7138776380877059, "ci_upper": -0.29444506990876418,
              "tau2": 0.76306275437095272, "i2": 94.556009017405998, "q": 110.21326117518791}
BCG_OTHER = {"estimate": -0.49466379663570881, "ci_lower": -0.85118148760213186, "ci_upper": -0.13814610566928576,
             "tau2": 0.13574314624053221, "i2": 82.330919165911624, "q": 28.298019840136032}
BCG_MH = {"estimate": -0.45370960468375388, "ci_lower": -0.53080942699812994, "ci_upper": -0.37660978236937781,
          "i2": 92.134631697306418, "q": 152.56755358665728}
RANDOM_ALLOCATION = {"Aronson 1948", "Ferguson & Simes 1949", "Rosenthal et al 1960", "Hart & Sutherland 1977",
                     "Vandiviere et al 1973", "TPT Madras 1980", "Coetzee & Berjak 1968"}


def dataset(name: str) -> list[dict]:
    with open(REFERENCE / "datasets" / f"{name}.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def reference(name: str, method: str, ci: str = "z") -> dict:
    with open(REFERENCE / "metafor_reference.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["dataset"] == name and row["method"] == method and row["ci"] == ci:
                return {k: float(row[k]) for k in ("estimate", "ci_lower", "ci_upper", "tau2", "i2", "q")}
    raise KeyError(name)


def study_id(name: str) -> str:
    return "STD-" + "-".join(name.replace("&", "_x0026_").replace(".", "").split())


def totals(stated: dict, ratio: bool, fixed: bool = False) -> str:
    """The attributes with which an outcome or subgroup states its pooled result."""
    back = math.exp if ratio else (lambda x: x)
    attrs = {"CHI2": repr(stated["q"]), "CI_END": repr(back(stated["ci_upper"])),
             "CI_START": repr(back(stated["ci_lower"])), "EFFECT_SIZE": repr(back(stated["estimate"])),
             "ESTIMABLE": "YES", "I2": f"{stated['i2']:.2f}", "P_CHI2": "0.0",
             "TAU2": "0.0" if fixed else repr(stated["tau2"]), "WEIGHT": "100.0", "Z": "5.1", "P_Z": "0.0"}
    if ratio:
        attrs.update({"LOG_CI_END": repr(stated["ci_upper"] / math.log(10)),
                      "LOG_CI_START": repr(stated["ci_lower"] / math.log(10)),
                      "LOG_EFFECT_SIZE": repr(stated["estimate"] / math.log(10))})
    return " ".join(f'{k}="{v}"' for k, v in sorted(attrs.items()))


def dich_data(row: dict, order: int) -> str:
    a, n1, c, n2 = (int(row[k]) for k in ("events_treat", "n_treat", "events_ctrl", "n_ctrl"))
    estimable = "NO" if (a == 0 and c == 0) else "YES"
    rr = ((a or 0.5) / n1) / ((c or 0.5) / n2)
    return (f'<DICH_DATA CI_END="{rr * 2:.4f}" CI_START="{rr / 2:.4f}" EFFECT_SIZE="{rr:.4f}" ESTIMABLE="{estimable}" '
            f'EVENTS_1="{a}" EVENTS_2="{c}" LOG_CI_END="0.0" LOG_CI_START="0.0" LOG_EFFECT_SIZE="0.0" '
            f'MODIFIED="2024-03-01 10:00:00 +0100" ORDER="{order}" O_E="0.0" SE="0.3" '
            f'STUDY_ID="{study_id(row["study"])}" TOTAL_1="{n1}" TOTAL_2="{n2}" VAR="0.09" WEIGHT="7.5"/>')


def cont_data(row: dict, order: int) -> str:
    return (f'<CONT_DATA CI_END="1.0" CI_START="-1.0" EFFECT_SIZE="0.0" ESTIMABLE="YES" '
            f'MEAN_1="{row["mean_treat"]}" MEAN_2="{row["mean_ctrl"]}" MODIFIED="2024-03-01 10:00:00 +0100" '
            f'ORDER="{order}" SD_1="{row["sd_treat"]}" SD_2="{row["sd_ctrl"]}" SE="0.5" '
            f'STUDY_ID="{study_id(row["study"])}" TOTAL_1="{row["n_treat"]}" TOTAL_2="{row["n_ctrl"]}" WEIGHT="11.1"/>')


def iv_data(row: dict, order: int) -> str:
    est, lo, hi = (float(row[k]) for k in ("estimate", "ci_lower", "ci_upper"))
    se = float((math.log(hi) - math.log(lo)) / (2 * norm_isf(0.025)))
    return (f'<IV_DATA CI_END="{hi}" CI_START="{lo}" EFFECT_SIZE="{est}" ESTIMABLE="YES" '
            f'ESTIMATE="{math.log(est)!r}" LOG_CI_END="0.0" LOG_CI_START="0.0" LOG_EFFECT_SIZE="0.0" '
            f'MODIFIED="2024-03-01 10:00:00 +0100" ORDER="{order}" SE="{se!r}" '
            f'STUDY_ID="{study_id(row["study"])}" TOTAL_1="0" TOTAL_2="0" WEIGHT="3.0"/>')


def labels(one: str, two: str) -> str:
    return (f"<GROUP_LABEL_1>{escape(one)}</GROUP_LABEL_1>\n<GROUP_LABEL_2>{escape(two)}</GROUP_LABEL_2>\n"
            f"<GRAPH_LABEL_1>Favours {escape(one)}</GRAPH_LABEL_1>\n<GRAPH_LABEL_2>Favours {escape(two)}</GRAPH_LABEL_2>")


def outcome(kind: str, no: int, name: str, measure: str, method: str, random: bool, stated: dict, body: str,
            one: str, two: str, subgroups: bool = False) -> str:
    k = body.count("_DATA ")
    ratio = measure in ("RR", "OR", "HR")
    extra = ' LOG_DATA="YES"' if kind == "IV" else f' METHOD="{method}"'
    return (f'<{kind}_OUTCOME CI_STUDY="95" CI_TOTAL="95" DF="{k - 1}" EFFECT_MEASURE="{measure}" '
            f'{totals(stated, ratio, fixed=not random)} ID="CMP-00{no}" NO="{no}" RANDOM="{"YES" if random else "NO"}" '
            f'SCALE="100.0" SORT_BY="STUDY" SUBGROUPS="{"YES" if subgroups else "NO"}" SUBGROUP_TEST="YES" '
            f'SWAP_EVENTS="NO" TOTALS="YES"{extra}>\n<NAME>{escape(name)}</NAME>\n{labels(one, two)}\n'
            f"{body}\n</{kind}_OUTCOME>")


def build_rm5() -> str:
    """The text of the test review: four comparisons, five outcomes, one with two subgroups."""
    bcg, catheters = dataset("bcg_rr"), dataset("nielweise_rr_drop00")
    stays, smoking = dataset("normand_md"), dataset("hackshaw_or_ci")
    subgroups = []
    for no, (name, stated, members) in enumerate((
            ("Random allocation", BCG_RANDOM, [r for r in bcg if r["study"] in RANDOM_ALLOCATION]),
            ("Alternate or systematic allocation", BCG_OTHER, [r for r in bcg if r["study"] not in RANDOM_ALLOCATION])),
            start=1):
        rows = "\n".join(dich_data(r, i) for i, r in enumerate(members, start=1))
        subgroups.append(f'<DICH_SUBGROUP {totals(stated, True)} NO="{no}" STUDIES="{len(members)}">\n'
                         f"<NAME>{name}</NAME>\n{rows}\n</DICH_SUBGROUP>")
    comparisons = [
        ("BCG vaccine versus no vaccine", [
            outcome("DICH", 1, "Tuberculosis", "RR", "IV", True, reference("bcg_rr", "DL"), "\n".join(subgroups),
                    "BCG", "control", subgroups=True),
            outcome("DICH", 2, "Tuberculosis (Mantel-Haenszel)", "RR", "MH", False, BCG_MH,
                    "\n".join(dich_data(r, i) for i, r in enumerate(bcg, start=1)), "BCG", "control")]),
        ("Antimicrobial-impregnated versus standard catheters", [
            outcome("DICH", 1, "Catheter-related bloodstream infection", "RR", "IV", False,
                    reference("nielweise_rr_drop00", "FE"),
                    "\n".join(dich_data(r, i) for i, r in enumerate(catheters, start=1)), "impregnated", "standard")]),
        ("Early supported discharge versus usual care", [
            outcome("CONT", 1, "Length of hospital stay (days)", "MD", "IV", True, reference("normand_md", "DL"),
                    "\n".join(cont_data(r, i) for i, r in enumerate(stays, start=1)), "early discharge", "usual care")]),
        ("Passive smoking versus no exposure", [
            outcome("IV", 1, "Lung cancer", "OR", "IV", False, reference("hackshaw_or_ci", "FE"),
                    "\n".join(iv_data(r, i) for i, r in enumerate(smoking, start=1)), "exposed", "unexposed")]),
    ]
    names = sorted({r["study"]: r.get("year", "") for data in (bcg, catheters, stays, smoking) for r in data}.items())
    studies = "\n".join(f'<STUDY DATA_SOURCE="PUB" ID="{study_id(n)}" MODIFIED="2024-03-01 10:00:00 +0100" '
                        f'NAME="{escape(n)}" YEAR="{y}">\n<REFERENCE ID="REF-{i}" PRIMARY="YES" TYPE="JOURNAL_ARTICLE">'
                        f"<TI>Report of {escape(n)}</TI></REFERENCE>\n</STUDY>" for i, (n, y) in enumerate(names, start=1))
    body = "\n".join(f'<COMPARISON ID="CMP-{c:03d}" NO="{c}">\n<NAME>{escape(name)}</NAME>\n' + "\n".join(outcomes)
                     + "\n</COMPARISON>" for c, (name, outcomes) in enumerate(comparisons, start=1))
    return ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
            '<COCHRANE_REVIEW DESCRIPTION="Test review" DOI="10.1002/14651858.CD999999" GROUP_ID="TEST" '
            'ID="TEST-REVIEW" MODIFIED="2024-03-01 10:00:00 +0100" REVMAN_SUB_VERSION="5.4.1" REVMAN_VERSION="5" '
            'STAGE="R" STATUS="UNCHANGED" TYPE="INTERVENTION" VERSION_NO="1.0">\n'
            '<COVER_SHEET MODIFIED="2024-03-01 10:00:00 +0100">\n<TITLE>Four classic meta-analyses '
            '(test review)</TITLE>\n</COVER_SHEET>\n<STUDIES_AND_REFERENCES>\n<STUDIES>\n<INCLUDED_STUDIES>\n'
            f"{studies}\n</INCLUDED_STUDIES>\n</STUDIES>\n</STUDIES_AND_REFERENCES>\n"
            f'<ANALYSES_AND_DATA CALCULATED_DATA="YES">\n{body}\n</ANALYSES_AND_DATA>\n</COCHRANE_REVIEW>\n')

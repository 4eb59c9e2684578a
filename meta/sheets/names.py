"""metafor's column names in a sheet given to ``meta pool|bias|metareg`` (and ``meta.pool`` & co.).

A data frame written from R (``write.csv(dat.bcg)``) names the arms ``ai, bi, ci, di`` / ``n1i, n2i`` /
``m1i, sd1i, m2i, sd2i`` (or ``tpos, tneg, cpos, cneg``) and its studies by ``author``/``trial`` and ``year``.
Such a column is read as the sheet column it means when the sheet does not have that column already;
every other column (moderators such as ``ablat``) is kept as it is. Labels are "Author Year", with a
letter where two studies would share one, as Cochrane reviews write them ("Smith 2001a").
"""

from __future__ import annotations

import pandas as pd

METAFOR_NAMES = {
    "ai": "events_treat", "bi": "nonevents_treat", "ci": "events_ctrl", "di": "nonevents_ctrl",
    "tpos": "events_treat", "tneg": "nonevents_treat", "cpos": "events_ctrl", "cneg": "nonevents_ctrl",
    "n1i": "n_treat", "n2i": "n_ctrl", "m1i": "mean_treat", "sd1i": "sd_treat", "m2i": "mean_ctrl",
    "sd2i": "sd_ctrl",
}
LABEL_COLUMNS = ("author", "authors", "trial", "studlab", "study_name")


def with_metafor_names(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """The frame with metafor's columns renamed to the sheet's, and a label column where it had none;
    returns the mapping used (metafor name -> sheet name) so messages can say what was read as what."""
    mapping = {name: ours for name, ours in METAFOR_NAMES.items()
               if name in frame.columns and ours not in frame.columns}
    if "ci" in mapping and "ai" not in frame.columns:  # 'ci' is control events only beside metafor's 'ai'
        mapping.pop("ci")
    frame = frame.rename(columns=mapping)
    if "study" not in frame.columns:
        label = next((c for c in LABEL_COLUMNS if c in frame.columns), None)
        if label:
            frame = frame.assign(study=_labels(frame, label))
            mapping[label + ("+year" if "year" in frame.columns else "")] = "study"
    return frame, mapping


def _labels(frame: pd.DataFrame, column: str) -> list:
    """'Author Year' per row (the year added where the label lacks it), letters where labels repeat."""
    labels = []
    for label, year in zip(frame[column], frame["year"] if "year" in frame.columns else [None] * len(frame)):
        text = "" if pd.isna(label) else str(label).strip()
        if year is not None and not pd.isna(year) and str(year).strip() not in text:
            text = f"{text} {str(year).strip()}".strip()
        labels.append(text or None)
    counts = pd.Series(labels).value_counts()
    seen: dict[str, int] = {}
    out = []
    for text in labels:
        if text is not None and counts[text] > 1:
            seen[text] = seen.get(text, 0) + 1
            text = f"{text}{chr(ord('a') + seen[text] - 1)}"
        out.append(text)
    return out

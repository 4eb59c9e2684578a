"""The static site: ``site/index.html`` with the summary table, every plot, each analysis's studies
with their sources, and the changes; readable offline (plots are copied next to the page).

Rendered with Jinja2 with autoescaping on, so every text that comes from a sheet or a spec is
shown as text (a study label ``<script>`` stays visible and inert).
"""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from meta._version import __version__
from meta.publish.living import OUTPUT, PLOTS, read_history, summary_rows
from meta.sheets.review import load_review

SITE = Path("site")


def build_site(root: Path, records: list[dict], write) -> None:
    """Write site/index.html, its stylesheet, the summary downloads and a copy of every plot."""
    env = Environment(loader=PackageLoader("meta.publish", "templates"), autoescape=select_autoescape(["html"]))
    history = root / "analyses" / "history.csv"
    versions = read_history(history.read_text() if history.exists() else "")
    rows, footnotes = summary_rows(records, versions)
    from meta.publish.living import summary_html_table

    table = summary_html_table(rows, link=lambda r: f"#{r.analysis}", footnotes=footnotes)
    changes_file = root / "analyses" / "CHANGES.md"
    changes = parse_changes(changes_file.read_text() if changes_file.exists() else "")
    newest = max((v.version_date for v in versions), default="")
    review = load_review(root)
    page = env.get_template("site.html").render(
        title=review.title, description=review.description, version=newest,
        summary_table=table, analyses=records, changes=changes, toolkit_version=__version__)
    write(SITE / "index.html", page)
    write(SITE / "style.css", env.loader.get_source(env, "style.css")[0])
    for name in ("summary.csv", "summary.md"):
        write(SITE / name, (root / OUTPUT / name).read_bytes())
    copied = set()
    for rec in records:
        plots = {**PLOTS, **({"sequential": ("png",)} if rec.get("tsa") else {})}
        if rec.get("kind") == "dose-response":
            plots = {"curve": ("png", "svg")}
        for plot, formats in plots.items():
            for fmt in formats:
                source = root / OUTPUT / rec["analysis"] / f"{plot}.{fmt}"
                copied.add(f"{rec['analysis']}-{plot}.{fmt}")
                write(SITE / "plots" / f"{rec['analysis']}-{plot}.{fmt}", source.read_bytes())
    for stale in sorted((root / SITE / "plots").glob("*")):  # plots of analyses or methods no longer published
        if stale.is_file() and stale.name not in copied:
            stale.unlink()


def parse_changes(text: str) -> list[dict]:
    """The sections of CHANGES.md as [{'date': ..., 'lines': [...]}], newest first."""
    sections: list[dict] = []
    for line in text.splitlines():
        heading = re.match(r"^## (.+)$", line)
        if heading:
            sections.append({"date": heading.group(1), "lines": []})
        elif line.startswith("- ") and sections:
            sections[-1]["lines"].append(line[2:])
    return sections

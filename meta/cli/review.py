"""The ``meta init``, ``meta import`` and ``meta export`` commands: thin, no statistics here.

Registered on the main group in cli.py (``main.add_command(init)`` etc.).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import click

from meta.cli.options import fail
from meta.errors import MetaError
from meta.interop.export import FORMATS
from meta.sheets.review import DEFAULT_TITLE
from meta.stats.options import MEASURES


def _date(value: str | None) -> str:

    value = value or datetime.date.today().isoformat()
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        fail(MetaError(f"--date must be YYYY-MM-DD; got {value!r}"))
    return value


@click.command(short_help="Start a new review in FOLDER that validates and runs at once.")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--title", default=DEFAULT_TITLE, show_default=True, help="Title of the review (kept in review.toml).")
@click.option("--date", "made_on", default=None, help="Date written on the example rows (YYYY-MM-DD; default today).")
def init(folder, title, made_on):
    """Make FOLDER a new review that `meta validate` and `meta run` accept at once.

    Writes the data dictionary, studies.csv, one outcome sheet with two fictional EXAMPLE rows, one
    analysis spec, review.toml (the title) and a README with the commands.

    Example: meta init my-review --title "Drug X for migraine: a living review"
    """
    from meta.interop.scaffold import init_review

    try:
        written = init_review(folder, title, _date(made_on))
    except MetaError as error:
        fail(error)
    for path in written:
        click.echo(f"  wrote {path}")
    click.echo(f"New review in {folder}. Next: meta validate --root {folder} && meta run --root {folder}")


@click.command("import", short_help="Import a RevMan 5 file or a spreadsheet into a review.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--root", default=".", type=click.Path(file_okay=False, path_type=Path),
              help="Review folder to import into (made with `meta init`).")
@click.option("--outcome", default=None, help="Spreadsheets: name of the outcome the rows report (required).")
@click.option("--measure", default=None, type=click.Choice(MEASURES),
              help="Spreadsheets: effect measure (default: from the column names, else RR / SMD / HR / GEN).")
@click.option("--sheet", "worksheet", default=None, help="Spreadsheets: worksheet of an .xlsx file (default: the first).")
@click.option("--set", "pairs", multiple=True, metavar="COLUMN=VALUE",
              help="Spreadsheets: a value for every row, e.g. --set design=cohort (repeatable).")
@click.option("--date", "import_date", default=None, help="Extraction date written on the rows (default today).")
def import_command(file, root, outcome, measure, worksheet, pairs, import_date):
    """Import FILE into the review: a RevMan 5 file (.rm5) or a spreadsheet (.csv, .xlsx).

    RevMan: every comparison becomes a sheet and every outcome a spec with the review's model and
    subgroups; each outcome is pooled and compared with the results the file states. Spreadsheet:
    one sheet and one spec for --outcome; the report says which column became which. Nothing is
    written if any row fails the checks of `meta validate`. The report is printed and kept as
    extraction/<name>/IMPORT_REPORT.md.

    Example: meta import CD001234.rm5 --root my-review

    Example: meta import trials.xlsx --root my-review --outcome "Wound infection" --measure OR
    """

    today = _date(import_date)
    try:
        if file.suffix.lower() == ".rm5":
            if outcome or measure or worksheet or pairs:
                raise MetaError("--outcome, --measure, --sheet and --set are for spreadsheets; a RevMan file "
                                "names its outcomes and measures itself")
            from meta.interop.revman import import_revman

            report = import_revman(file, root, today)
        else:
            if not outcome:
                raise MetaError("a spreadsheet needs --outcome NAME (the outcome its rows report)")
            constants = {}
            for pair in pairs:
                if "=" not in pair:
                    raise MetaError(f"--set takes COLUMN=VALUE; got {pair!r}")
                column, value = pair.split("=", 1)
                constants[column.strip()] = value.strip()
            from meta.interop.spreadsheet import import_spreadsheet

            report = import_spreadsheet(file, root, outcome, today, measure, constants, worksheet)
    except MetaError as error:
        fail(error)
    click.echo(report.text, nl=False)
    click.echo("\nWritten: " + ", ".join(report.written))
    for check in report.checks:
        if not check.agrees and not check.expected:
            click.echo(f"warning: {check.label} does not reproduce the file's result: "
                       + "; ".join(check.differences), err=True)


@click.command(short_help="Export an analysis as an R (metafor) script or its yi/vi CSV.")
@click.argument("analysis")
@click.option("--to", "to", required=True, type=click.Choice(FORMATS),
              help="r: an R script that re-does the analysis with metafor; csv: the study yi, vi data.")
@click.option("--root", default=".", type=click.Path(file_okay=False, path_type=Path), help="Project folder.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: standard output).")
def export(analysis, to, root, out):
    """Export ANALYSIS (the name of a spec in analyses/) to R or to metafor-style CSV.

    The R script holds the rows inline, computes the effect sizes with metafor::escalc and pools
    them with metafor::rma as the spec says (measure, estimator, test, level, zero cells, MD
    variance, subgroups), then prints the numbers.

    Example: meta export depression --to r --out depression.R && Rscript depression.R
    """
    from meta.interop.export import export_analysis
    from meta.storage import write_if_changed

    try:
        text = export_analysis(root, analysis, to)
    except MetaError as error:
        fail(error)
    if out is None:
        click.echo(text, nl=False)
    else:
        write_if_changed(out, text)
        click.echo(f"Wrote {out}", err=True)

"""The ``meta`` command line: a thin layer over the library; no statistics here.

Typed errors from the library become messages on stderr and exit code 1; nothing prints a traceback
for bad input.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
from pathlib import Path

import click

from meta.api.review import Review
from meta.cli.analysis import chosen_analysis
from meta.cli.options import analysis_options, fail, i2_option, json_option, root_option
from meta.errors import MetaError
from meta.stats.results import render_text

MAX_LOG = math.log(sys.float_info.max)  # exp() of more overflows


def reportable(result) -> bool:
    """The estimate, its CI and tau^2 are finite, and for ratio measures so is exp() of every limit."""
    if not all(math.isfinite(getattr(result, name)) for name in ("estimate", "se", "ci_lower", "ci_upper", "tau2")):
        return False
    limits = ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")
    return not result.is_ratio or all(getattr(result, name) < MAX_LOG for name in limits)


LAZY_COMMANDS = {
    "bias": "meta.cli.bias:bias",
    "batch": "meta.cli.batch:batch",
    "metareg": "meta.cli.metareg:metareg",
    "doseresponse": "meta.cli.doseresponse:doseresponse",
    "init": "meta.cli.review:init",
    "import": "meta.cli.review:import_command",
    "export": "meta.cli.review:export",
}


class SafeGroup(click.Group):
    """The command group: commands in their own modules are imported only when used (a no-change
    ``meta run`` stays fast), and an unexpected error becomes one line and exit code 2, not a traceback."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS and name not in self.commands:
            module, attribute = LAZY_COMMANDS[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except MetaError as error:
            fail(error)
        except Exception as error:  # the last line of defence; every expected error is a MetaError
            click.echo(f"Internal error: {type(error).__name__}: {error}. Please report it with the command "
                       "you ran (set META_DEBUG=1 to see the traceback).", err=True)
            if os.environ.get("META_DEBUG"):
                raise
            sys.exit(2)


@click.group(cls=SafeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="meta-living")
def main() -> None:
    """meta: living evidence synthesis (effect sizes, pooling, plots, living summary)."""


@main.command(short_help="Pool one analysis: a SHEET, or a spec with --spec NAME.")
@click.argument("sheet", required=False, type=click.Path(path_type=Path))
@analysis_options
@i2_option
@json_option
def pool(sheet, spec_name, where_items, root, measure, method, ci_method, level, md_variance, zero_cells,
         allow_mixed, i2_definition, as_json):
    """Pool the rows of SHEET (a CSV), or the analysis of analyses/NAME.toml, and print the result.

    Examples:

      meta pool --spec depression

      meta pool extraction/survival/survival.csv --measure HR --where analysis_group=breast_all_cause
    """
    try:
        result = chosen_analysis("pool", sheet, spec_name, where_items, root, allow_mixed)
    except MetaError as error:
        fail(error)
    if not reportable(result):
        why = f"the {result.method} estimator did not converge" if not result.converged else "the numbers are too extreme"
        fail(MetaError(f"{sheet or spec_name}: the pooled result or its interval is not finite ({why}); check the "
                       "rows with the smallest and largest variances, or choose another estimator (e.g. --method DL)"))
    if as_json:
        click.echo(result.to_json())
    else:
        click.echo(render_text(result, warnings=False), nl=False)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


@main.command(short_help="Check every sheet, studies.csv and spec; list every problem.")
@root_option
@click.option("--strict", is_flag=True, help="Treat warnings (unchecked rows, asymmetric CIs) as problems.")
@json_option
def validate(root, strict, as_json):
    """Check every sheet, studies.csv and every analysis spec; list every problem (exit 1 if any).

    Example: meta validate
    """
    report = Review(root).validate()
    problems = report.problems + (report.warnings if strict else [])
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        sys.exit(1 if problems else 0)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s) found:", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)
    click.echo(f"OK: {report.sheets} sheets, {report.rows} rows, {report.specs} analysis specs; "
               f"{len(report.warnings)} warning(s)")


@main.command("run", short_help="Run every analysis whose inputs changed; publish the outputs.")
@root_option
@click.option("--date", "version_date", default=None, help="Version date to record (YYYY-MM-DD; default today).")
@click.option("--force", is_flag=True, help="Re-compute every analysis even if its inputs did not change.")
@json_option
def run_command(root, version_date, force, as_json):
    """Run every analysis spec and publish plots, the living summary, history, CHANGES.md and the site.

    Example: meta run
    """
    seen = []

    def progress(name, status):
        seen.append(name)
        if not as_json:
            click.echo(f"[{len(seen)}] {name}: {status}")

    try:
        report = Review(root).run(force=force, date=version_date, progress=progress)
    except MetaError as error:
        fail(error, written=False)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(f"{report.analyses} analyses; {len(report.recomputed)} re-computed; "
               f"{len(report.written)} file(s) written; {len(report.published)} new version(s) published")
    for name in report.published:
        click.echo(f"  new version: {name}")


@main.command(short_help="Add one study result to a sheet, checked first; --run re-runs.")
@click.argument("sheet", type=click.Path(path_type=Path))
@click.option("--from-csv", "row_csv", type=click.Path(path_type=Path), help="A CSV file with a header and one row.")
@click.option("--set", "pairs", multiple=True, metavar="COLUMN=VALUE", help="A cell of the new row (repeatable).")
@click.option("--root", default=".", type=click.Path(file_okay=False, path_type=Path), help="Project folder.")
@click.option("--run", "rerun", is_flag=True, help="Re-run the analyses afterwards (only those whose inputs changed).")
@click.option("--date", "version_date", default=None, help="Version date for --run (YYYY-MM-DD; default today).")
def add(sheet, row_csv, pairs, root, rerun, version_date):
    """Add one study result to SHEET, checked with the same checks as `meta validate`.

    Example: meta add extraction/survival/survival.csv --from-csv new_row.csv --run
    """
    from meta.sheets.add import add_row, read_row_csv

    try:
        values = read_row_csv(row_csv) if row_csv else {}
        for pair in pairs:
            if "=" not in pair:
                raise MetaError(f"--set takes COLUMN=VALUE; got {pair!r}")
            column, value = pair.split("=", 1)
            values[column.strip()] = value
        if not values:
            raise MetaError("give the new row with --from-csv FILE or --set COLUMN=VALUE")
        number = add_row(root, sheet, values)
    except MetaError as error:
        fail(error, written=False)
    click.echo(f"Added row {number} to {sheet}")
    if rerun:
        ctx = click.get_current_context()
        ctx.invoke(run_command, root=root, version_date=version_date, force=False, as_json=False)


@main.command(short_help="What changed in the pooled results since a git revision.")
@click.argument("revision", required=False)
@root_option
@json_option
def diff(revision, root, as_json):
    """What changed in the pooled results since git REVISION (or each analysis's previous version).

    Example: meta diff HEAD~1
    """
    try:
        report = Review(root).diff(revision)
    except MetaError as error:
        fail(error)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    if not report.lines:
        click.echo("No change in the pooled results" + (f" since {revision}" if revision else ""))
    for line in report.lines:
        click.echo(line)


if __name__ == "__main__":
    main()

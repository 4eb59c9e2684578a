"""The ``meta`` command line: a thin layer over the library; no statistics here.

Typed errors from the library become messages on stderr and exit code 1; nothing prints a traceback
for bad input.
"""

from __future__ import annotations

import datetime
import importlib
import math
import os
import sys
from pathlib import Path

import click

from .analysis import pool_sheet
from .cli_options import (
    i2_option,
    level_option,
    md_variance_option,
    measure_option,
    method_option,
    zero_cells_option,
)
from .errors import MetaError, OptionError, SheetError
from .evidence import validate_project
from .options import (
    CI_METHODS,
    EffectOptions,
    PoolOptions,
)
from .results import render_text

MAX_LOG = math.log(sys.float_info.max)  # exp() of more overflows


def reportable(result) -> bool:
    """The estimate, its CI and tau^2 are finite, and for ratio measures so is exp() of every limit."""
    if not all(math.isfinite(getattr(result, name)) for name in ("estimate", "se", "ci_lower", "ci_upper", "tau2")):
        return False
    limits = ("estimate", "ci_lower", "ci_upper", "pi_lower", "pi_upper")
    return not result.is_ratio or all(getattr(result, name) < MAX_LOG for name in limits)


def fail(error: MetaError) -> None:
    """Print every problem of an error (file, row, column, fix) and exit with code 1."""
    if isinstance(error, SheetError):
        click.echo(f"{len(error.problems)} problem(s) found:", err=True)
        for problem in error.problems:
            click.echo(f"  - {problem}", err=True)
    else:
        click.echo(f"Error: {error}", err=True)
    sys.exit(1)


LAZY_COMMANDS = {
    "bias": "meta.cli_bias:bias",
    "batch": "meta.cli_batch:batch",
    "metareg": "meta.cli_metareg:metareg",
    "init": "meta.cli_review:init",
    "import": "meta.cli_review:import_command",
    "export": "meta.cli_review:export",
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


@main.command()
@click.argument("sheet", type=click.Path(path_type=Path))
@measure_option
@method_option()
@click.option("--ci", "ci_method", default="z", show_default=True, type=click.Choice(CI_METHODS),
              help="Interval for the mean: z, or knha (Knapp-Hartung, t on k-1 df).")
@md_variance_option
@zero_cells_option
@level_option
@i2_option
@click.option("--json", "as_json", is_flag=True, help="Print the results contract as one JSON object.")
def pool(sheet, measure, method, ci_method, md_variance, zero_cells, level, i2_definition, as_json):
    """Pool every row of SHEET (a CSV) and print the result.

    Example: meta pool extraction/depression/depression.csv --measure SMD --method REML --ci knha
    """
    try:
        result = pool_sheet(sheet, EffectOptions(measure, md_variance=md_variance, zero_cells=zero_cells),
                            PoolOptions(method=method, ci=ci_method, level=level, i2_definition=i2_definition))
    except (SheetError, OptionError) as error:
        fail(error)
    except MetaError as error:  # about rows of the sheet: say which file
        fail(MetaError(f"{sheet}: {error}"))
    if not reportable(result):
        why = f"the {method} estimator did not converge" if not result.converged else "the numbers are too extreme"
        fail(MetaError(f"{sheet}: the pooled result or its interval is not finite ({why}); check the rows with "
                       "the smallest and largest variances, or choose another estimator (e.g. --method DL)"))
    if as_json:
        click.echo(result.to_json())
    else:
        click.echo(render_text(result), nl=False)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


@main.command()
@click.option("--root", default=".", type=click.Path(file_okay=False, path_type=Path),
              help="Project folder (holds extraction/ and analyses/).")
@click.option("--strict", is_flag=True, help="Treat warnings (unchecked rows, asymmetric CIs) as problems.")
def validate(root, strict):
    """Check every sheet, studies.csv and every analysis spec; list every problem.

    Example: meta validate
    """
    report = validate_project(root)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    problems = report.problems + (report.warnings if strict else [])
    if problems:
        click.echo(f"{len(problems)} problem(s) found:", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)
    click.echo(f"OK: {report.sheets} sheets, {report.rows} rows, {report.specs} analysis specs; "
               f"{len(report.warnings)} warning(s)")


@main.command("run")
@click.option("--root", default=".", type=click.Path(file_okay=False, path_type=Path),
              help="Project folder (holds extraction/ and analyses/).")
@click.option("--date", "version_date", default=None, help="Version date to record (YYYY-MM-DD; default today).")
@click.option("--force", is_flag=True, help="Re-compute every analysis even if its inputs did not change.")
def run_command(root, version_date, force):
    """Run every analysis spec and publish plots, the living summary, history, CHANGES.md and the site.

    Example: meta run
    """
    from .run import run

    version_date = version_date or datetime.date.today().isoformat()
    try:
        datetime.date.fromisoformat(version_date)
    except ValueError:
        fail(MetaError(f"--date must be YYYY-MM-DD; got {version_date!r}"))
    seen = []

    def progress(name, status):
        seen.append(name)
        click.echo(f"[{len(seen)}] {name}: {status}")

    try:
        report = run(root, version_date, progress, force=force)
    except MetaError as error:
        fail(error)
    click.echo(f"{report.analyses} analyses; {len(report.recomputed)} re-computed; "
               f"{len(report.written)} file(s) written; {len(report.published)} new version(s) published")
    for name in report.published:
        click.echo(f"  new version: {name}")


@main.command()
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
    from .add import add_row, read_row_csv

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
        fail(error)
    click.echo(f"Added row {number} to {sheet}")
    if rerun:
        ctx = click.get_current_context()
        ctx.invoke(run_command, root=root, version_date=version_date, force=False)


@main.command()
@click.argument("revision", required=False)
@click.option("--root", default=".", type=click.Path(file_okay=False, path_type=Path), help="Project folder.")
def diff(revision, root):
    """What changed in the pooled results since git REVISION (or each analysis's previous version).

    Example: meta diff HEAD~1
    """
    from .diff import diff_lines

    try:
        lines = diff_lines(root, revision)
    except MetaError as error:
        fail(error)
    if not lines:
        click.echo("No change in the pooled results" + (f" since {revision}" if revision else ""))
    for line in lines:
        click.echo(line)


if __name__ == "__main__":
    main()

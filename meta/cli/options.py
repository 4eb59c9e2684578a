"""Command-line options and helpers shared by the commands (one definition each), and ``fail``, which
turns a library error into messages on stderr and exit code 1."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from meta.errors import MetaError, SheetError
from meta.stats.options import (
    CI_METHODS,
    I2_DEFINITIONS,
    MD_VARIANCES,
    MEASURES,
    METHODS,
    ZERO_CELL_RULES,
)

NOTHING_WRITTEN = "nothing was written"

measure_option = click.option("--measure", type=click.Choice(MEASURES),
                              help="Effect measure (required unless --spec gives it).")
md_variance_option = click.option("--md-variance", default="unequal", show_default=True,
                                  type=click.Choice(MD_VARIANCES),
                                  help="MD variance from the two SDs or the pooled SD.")
zero_cells_option = click.option("--zero-cells", default="keep", show_default=True,
                                 type=click.Choice(ZERO_CELL_RULES),
                                 help="keep: add 0.5 to tables with a zero cell (metafor); "
                                      "drop: leave out double-zero RR/OR studies.")
level_option = click.option("--level", default=95.0, show_default=True, type=float,
                            help="Confidence level in percent.")
i2_option = click.option("--i2", "i2_definition", default="typical", show_default=True,
                         type=click.Choice(I2_DEFINITIONS),
                         help="I^2 from the typical (metafor) or the mean within-study variance.")
ci_option = click.option("--ci", "ci_method", default="knha", show_default=True, type=click.Choice(CI_METHODS),
                         help="Interval and tests: knha (Knapp-Hartung, t on k-1 df) or z.")
root_option = click.option("--root", default=".", type=click.Path(file_okay=False, path_type=Path),
                           help="Project folder (holds extraction/ and analyses/).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
spec_option = click.option("--spec", "spec_name", metavar="NAME",
                           help="Run exactly the analysis of analyses/NAME.toml (its sheet, filter, measure, "
                                "method, interval); options given on the command line override the spec's.")
where_option = click.option("--where", "where_items", multiple=True, metavar="COLUMN=VALUE",
                            help="Keep rows whose COLUMN equals VALUE (repeatable; one column twice = either).")
allow_mixed_option = click.option("--allow-mixed", is_flag=True,
                                  help="Pool change-score SMDs with follow-up SMDs (refused otherwise: "
                                       "Cochrane Handbook 10.5.2).")


def method_option(help_text: str = "Estimator of tau^2 (FE: fixed effect)."):
    return click.option("--method", default="REML", show_default=True, type=click.Choice(METHODS), help=help_text)


def analysis_options(command):
    """The options that choose rows and settings of one analysis (pool, bias, metareg)."""
    for option in reversed((spec_option, where_option, root_option, measure_option, method_option(), ci_option,
                            level_option, md_variance_option, zero_cells_option, allow_mixed_option)):
        command = option(command)
    return command


def fail(error: MetaError, written: bool = True) -> None:
    """Print every problem of an error (file, row, column, fix) and exit with code 1.

    ``written=False`` ends the message with 'nothing was written' (for commands that write files)."""
    if isinstance(error, SheetError):
        click.echo(f"{len(error.problems)} problem(s) found:", err=True)
        for problem in error.problems:
            click.echo(f"  - {problem}", err=True)
    else:
        click.echo(f"Error: {error}", err=True)
    if not written:
        click.echo(f"({NOTHING_WRITTEN})", err=True)
    sys.exit(1)

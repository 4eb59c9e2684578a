"""The ``meta bias`` command: small-study tests and leave-one-out of one sheet; no statistics here.

Registered on the main group in cli.py (``main.add_command(bias)``).
"""

from __future__ import annotations

from pathlib import Path

import click

from .bias import bias_sheet, render_bias_text
from .cli_options import (
    md_variance_option,
    measure_option,
    method_option,
    zero_cells_option,
)
from .errors import MetaError
from .options import CI_METHODS, EffectOptions, PoolOptions


@click.command()
@click.argument("sheet", type=click.Path(path_type=Path))
@measure_option
@method_option("Estimator of tau^2 for the model and the Egger regression (FE: fixed effect).")
@click.option("--ci", "ci_method", default="z", show_default=True, type=click.Choice(CI_METHODS),
              help="Tests: z, or knha (Knapp-Hartung t; Egger's test on k-2 df).")
@md_variance_option
@zero_cells_option
@click.option("--json", "as_json", is_flag=True,
              help="Print Egger, Begg, trim-and-fill and leave-one-out as one JSON object (always computed).")
def bias(sheet, measure, method, ci_method, md_variance, zero_cells, as_json):
    """Egger's and Begg's tests, trim-and-fill and leave-one-out for SHEET (a CSV), as metafor.

    The tests are printed only for k >= 10 (Cochrane Handbook); --json always gives them, with a
    warning when k < 10.

    Example: meta bias extraction/depression/depression.csv --measure SMD --method REML --json
    """
    from .cli import fail  # here, not at the top: cli.py imports this module

    try:
        report = bias_sheet(sheet, EffectOptions(measure, md_variance=md_variance, zero_cells=zero_cells),
                            PoolOptions(method=method, ci=ci_method))
    except MetaError as error:
        fail(error)
    if as_json:
        click.echo(report.to_json())
    else:
        click.echo(render_bias_text(report), nl=False)

"""The ``meta metareg`` command: meta-regression of one sheet on its moderator columns; no statistics here.

To be registered on the main group in cli.py (``main.add_command(metareg)``).
"""

from __future__ import annotations

from pathlib import Path

import click

from .cli_options import (
    md_variance_option,
    measure_option,
    method_option,
    zero_cells_option,
)
from .errors import MetaError
from .metareg import metareg_sheet, render_metareg_text
from .options import CI_METHODS, EffectOptions


@click.command()
@click.argument("sheet", type=click.Path(path_type=Path))
@measure_option
@click.option("--mod", "mods", multiple=True, required=True,
              help="A moderator column (repeat for several), e.g. dose_met_h_week, follow_up_years, year.")
@click.option("--factor", "factors", multiple=True,
              help="A moderator to treat as categorical: dummy-coded, its first level the reference (text columns always are).")
@method_option("Estimator of the residual tau^2 (FE: fixed-effects model).")
@click.option("--test", "test", default="z", show_default=True, type=click.Choice(CI_METHODS),
              help="z tests, or knha (Knapp-Hartung t tests and F test of the moderators).")
@md_variance_option
@zero_cells_option
@click.option("--json", "as_json", is_flag=True, help="Print the model as one JSON object.")
def metareg(sheet, measure, mods, factors, method, test, md_variance, zero_cells, as_json):
    """Meta-regression of the effects in SHEET (a CSV) on study-level moderators, as metafor's rma(mods = ).

    Studies with a missing moderator are left out (with a warning).

    Example: meta metareg extraction/risk/risk_cohorts.csv --measure HR --mod dose_met_h_week --test knha
    """
    from .cli import fail  # here, not at the top: cli.py imports this module

    try:
        result = metareg_sheet(sheet, EffectOptions(measure, md_variance=md_variance, zero_cells=zero_cells),
                               tuple(mods), tuple(factors), method, test)
    except MetaError as error:
        fail(error)
    if as_json:
        click.echo(result.to_json())
    else:
        click.echo(render_metareg_text(result), nl=False)

"""The ``meta metareg`` command: meta-regression of one analysis on moderator columns; no statistics here."""

from __future__ import annotations

from pathlib import Path

import click

from meta.cli.analysis import chosen_analysis
from meta.cli.options import analysis_options, fail, json_option
from meta.errors import MetaError
from meta.stats.metareg import render_metareg_text


@click.command(short_help="Meta-regression of one analysis on study-level moderators.")
@click.argument("sheet", required=False, type=click.Path(path_type=Path))
@click.option("--mod", "mods", multiple=True,
              help="A moderator column (repeat for several), e.g. dose_met_h_week; with --spec, the spec's "
                   "moderators unless given.")
@click.option("--factor", "factors", multiple=True,
              help="A moderator to treat as categorical: dummy-coded, its first level the reference "
                   "(text columns always are).")
@analysis_options
@json_option
def metareg(sheet, mods, factors, spec_name, where_items, root, measure, method, ci_method, level, md_variance,
            zero_cells, allow_mixed, as_json):
    """Meta-regression of the effects of SHEET (a CSV) or --spec NAME on moderators, as metafor's rma(mods = ).

    Studies with a missing moderator are left out (with a warning). --ci knha gives t tests and the
    F test of the moderators; z gives z and chi-square tests.

    Examples:

      meta metareg --spec risk-breast

      meta metareg extraction/risk/risk_cohorts.csv --measure HR --mod dose_met_h_week --where cancer_site=colon
    """
    extra = {"mods": list(mods) or None, "factors": tuple(factors)}
    try:
        if not spec_name and not mods:
            raise MetaError("name at least one moderator with --mod COLUMN")
        result = chosen_analysis("metareg", sheet, spec_name, where_items, root, allow_mixed, **extra)
    except MetaError as error:
        fail(error)
    click.echo(result.to_json() if as_json else render_metareg_text(result), nl=as_json)

"""The ``meta bias`` command: small-study tests and leave-one-out of one analysis; no statistics here."""

from __future__ import annotations

from pathlib import Path

import click

from meta.cli.analysis import chosen_analysis
from meta.cli.options import analysis_options, fail, json_option
from meta.errors import MetaError
from meta.stats.bias import render_bias_text


@click.command(short_help="Small-study tests, trim-and-fill and leave-one-out.")
@click.argument("sheet", required=False, type=click.Path(path_type=Path))
@analysis_options
@json_option
def bias(sheet, spec_name, where_items, root, measure, method, ci_method, level, md_variance, zero_cells,
         allow_mixed, as_json):
    """Egger's and Begg's tests, trim-and-fill and leave-one-out for SHEET (a CSV) or --spec NAME, as metafor.

    The tests are printed only for k >= 10 (Cochrane Handbook); --json always gives them, with a
    warning when k < 10. The model and Egger's regression use --method and --ci.

    Examples:

      meta bias --spec depression --json

      meta bias extraction/depression/depression.csv --measure SMD --where smd_basis=final
    """
    try:
        report = chosen_analysis("bias", sheet, spec_name, where_items, root, allow_mixed)
    except MetaError as error:
        fail(error)
    click.echo(report.to_json() if as_json else render_bias_text(report), nl=as_json)

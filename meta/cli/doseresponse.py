"""The ``meta doseresponse`` command: a dose-response meta-analysis of a dose-level sheet; no statistics here."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.core import ParameterSource

from meta.api.doseresponse import doseresponse as fit_sheet
from meta.api.review import Review
from meta.cli.options import fail, json_option, root_option, spec_option, where_option
from meta.errors import MetaError
from meta.sheets.selection import parse_where
from meta.stats.doseresponse import METHODS, MODELS
from meta.stats.pseudocounts import COVARIANCES, TYPES

SETTINGS = ("model", "knots", "covariance", "fallback", "method", "type", "n_column", "predict", "reference",
            "round_person_time", "optimum")


def _numbers(text: str | None, what: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise MetaError(f"{what} takes numbers separated by commas (e.g. 4.375,8.75,17.5); got {text!r}") from None


@click.command(short_help="Dose-response meta-analysis of a dose-level sheet (dosresmeta).")
@click.argument("sheet", required=False, type=click.Path(path_type=Path))
@spec_option
@where_option
@root_option
@click.option("--model", default="rcs", show_default=True, type=click.Choice(MODELS),
              help="linear, quadratic, or rcs (restricted cubic spline, as rms::rcs).")
@click.option("--knots", metavar="K1,K2,...|person-time",
              help="Spline knots (doses), or person-time (Garcia 2023's rule); default 10/50/90% dose quantiles.")
@click.option("--covariance", default="gl", show_default=True, type=click.Choice(COVARIANCES),
              help="Within-study covariance from pseudo-counts: gl (Greenland-Longnecker), hamling "
                   "(dosresmeta 2.1), hamling-2017 (dosresmeta 2.0.1), or independent.")
@click.option("--fallback", type=click.Choice(["gl"]), help="Re-fit with gl when a study's pseudo-counts fail.")
@click.option("--method", default="REML", show_default=True, type=click.Choice(METHODS), help="Second stage.")
@click.option("--type", "type_", type=click.Choice(TYPES), help="Study type for every row (else the type column).")
@click.option("--n-column", help="The column that gives n (default: n; person-time for HR rows where given).")
@click.option("--round-person-time", is_flag=True, help="Round person-time to whole units (Garcia 2023's code).")
@click.option("--optimum", default="converged", show_default=True, type=click.Choice(["converged", "mvmeta"]),
              help="REML run to convergence, or stopped where R's mvmeta stops.")
@click.option("--predict", metavar="D1,D2,...", help="Doses for the predictions [default: 4.375,8.75,17.5].")
@click.option("--reference", default=0.0, show_default=True, type=float, help="Reference dose of the predictions.")
@json_option
def doseresponse(sheet, spec_name, where_items, root, model, knots, covariance, fallback, method, type_, n_column,
                 round_person_time, optimum, predict, reference, as_json):
    """Dose-response meta-analysis of SHEET (one row per exposure category) or --spec NAME, as dosresmeta.

    The sheet: study, dose, estimate + ci_lower + ci_upper (or yi + sei; the referent row: RR 1, no
    CI), cases, n, type (cc, ir, ci); dosresmeta's names (id, logrr, se, peryears) are read too.

    Examples:

      meta doseresponse --spec dose-colon --json

      meta doseresponse alcohol_crc.csv --model rcs --covariance gl --predict 10,20,30 --json
    """
    ctx = click.get_current_context()
    values = {"model": model, "knots": knots, "covariance": covariance, "fallback": fallback, "method": method,
              "type": type_, "n_column": n_column, "round_person_time": round_person_time, "optimum": optimum,
              "predict": predict, "reference": reference}
    names = {"type": "type_"}
    try:
        values["predict"] = _numbers(predict, "--predict")
        if knots not in (None, "person-time"):
            values["knots"] = _numbers(knots, "--knots")
        where = parse_where(where_items) or None
        if spec_name and sheet:
            raise MetaError("give a SHEET or --spec NAME, not both")
        if spec_name:
            given = {k: v for k, v in values.items()
                     if ctx.get_parameter_source(names.get(k, k)) is ParameterSource.COMMANDLINE}
            result = Review(root).doseresponse(spec_name, where=where, **given)
        elif sheet:
            values["predict"] = values["predict"] or (4.375, 8.75, 17.5)
            result = fit_sheet(sheet, where=where, **values)
        else:
            raise MetaError("name a dose-level SHEET (a CSV) or an analysis with --spec NAME")
    except MetaError as error:
        fail(error)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False))
    else:
        click.echo(result.summary(), nl=False)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)

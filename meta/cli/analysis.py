"""How ``meta pool|bias|metareg`` choose their analysis: a SHEET with its options, or ``--spec NAME``
(the spec's settings, any option given on the command line overriding it); ``--where`` filters either.
The work itself is the library's (``meta.api``): the CLI and Python share checks and messages."""

from __future__ import annotations

import click
from click.core import ParameterSource

from meta.api import analyses
from meta.api.review import Review
from meta.errors import MetaError
from meta.sheets.selection import parse_where

SETTINGS = {"measure": "measure", "method": "method", "ci_method": "ci", "level": "level",
            "md_variance": "md_variance", "zero_cells": "zero_cells", "i2_definition": "i2"}


def chosen_analysis(kind: str, sheet, spec_name, where_items, root, allow_mixed, **extra):
    """Call ``meta.<kind>`` (or ``Review(root).<kind>(spec)``) with the command line's settings."""
    ctx = click.get_current_context()
    where = parse_where(where_items) or None
    given = {key: ctx.params[name] for name, key in SETTINGS.items()
             if name in ctx.params and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
    if spec_name and sheet:
        raise MetaError("give a SHEET or --spec NAME, not both")
    if spec_name:
        return getattr(Review(root), kind)(spec_name, where=where, allow_mixed=allow_mixed, **given, **extra)
    if not sheet:
        raise MetaError("name a SHEET (a CSV) or an analysis with --spec NAME")
    settings = {key: ctx.params[name] for name, key in SETTINGS.items() if name in ctx.params}
    if settings.get("measure") is None:
        raise MetaError("--measure is required with a SHEET (RR, OR, RD, HR, SMD, MD or GEN)")
    if kind == "metareg":
        settings.pop("i2", None)
    return getattr(analyses, kind)(sheet, where=where, allow_mixed=allow_mixed, **settings, **extra)

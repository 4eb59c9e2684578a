"""Command-line options shared by `pool`, `batch`, `bias` and `metareg` (one definition each)."""

import click

from .options import I2_DEFINITIONS, MD_VARIANCES, MEASURES, METHODS, ZERO_CELL_RULES

measure_option = click.option("--measure", required=True, type=click.Choice(MEASURES), help="Effect measure.")
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


def method_option(help_text: str = "Estimator of tau^2 (FE: fixed effect)."):
    return click.option("--method", default="REML", show_default=True, type=click.Choice(METHODS), help=help_text)

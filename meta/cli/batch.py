"""The ``meta batch`` command: pool every analysis of a long file; no statistics here.

Registered on the main group in cli.py (``main.add_command(batch)``).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from meta.batch.engine import (
    DEFAULT_CHUNK_ROWS,
    dask_client,
    open_long_file,
    run_batch,
    write_results,
)
from meta.cli.options import (
    ci_option,
    fail,
    i2_option,
    level_option,
    md_variance_option,
    measure_option,
    method_option,
    zero_cells_option,
)
from meta.errors import MetaError
from meta.stats.options import (
    EffectOptions,
    PoolOptions,
)


@click.command(short_help="Pool every analysis of a long CSV/Parquet file (vectorised).")
@click.argument("path", type=click.Path(path_type=Path))
@measure_option
@method_option()
@ci_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Results file, CSV or Parquet by its extension (.csv, .parquet); CSV on stdout if omitted.")
@click.option("--engine", default="local", show_default=True, type=click.Choice(["local", "dask"]),
              help="Pool here, or on a dask.distributed cluster.")
@click.option("--scheduler", default=None,
              help="Address of a dask scheduler (tcp://host:8786) for --engine dask; "
                   "a local cluster of one process per core if omitted.")
@click.option("--chunk-size", default=DEFAULT_CHUNK_ROWS, show_default=True, type=click.IntRange(min=1),
              help="Rows read at a time; memory grows with it, not with the file.")
@md_variance_option
@zero_cells_option
@level_option
@i2_option
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
def batch(path, measure, method, ci_method, out, engine, scheduler, chunk_size, md_variance, zero_cells,
          level, i2_definition, progress):
    """Pool every analysis of PATH, a long CSV or Parquet file: one result row per analysis.

    PATH has a column 'analysis' and the effect columns of any group (yi+vi or yi+sei;
    estimate+ci_lower+ci_upper; events+n; means+SDs+n), the rows of each analysis next to each
    other. Output columns: analysis, the results contract (k ... q_p; exp() of the estimate and
    intervals for ratio measures), converged and iterations. Analyses whose estimator did not
    converge are flagged converged=false (and counted on stderr).

    Example: meta batch trials.parquet --measure SMD --method REML --ci knha --out results.parquet
    """

    if scheduler and engine != "dask":
        fail(MetaError("--scheduler needs --engine dask"))
    try:
        effect_options = EffectOptions(measure, md_variance=md_variance, zero_cells=zero_cells)
        pool_options = PoolOptions(method=method, ci=ci_method, level=level, i2_definition=i2_definition)
        source = open_long_file(path)
        with contextlib.ExitStack() as stack:
            bar = (stack.enter_context(click.progressbar(length=source.size, label="pooling", file=sys.stderr))
                   if progress else None)
            client = stack.enter_context(dask_client(scheduler)) if engine == "dask" else None
            frames = run_batch(source, effect_options, pool_options, chunk_size, client,
                               None if bar is None else lambda position: bar.update(position - bar.pos))
            summary = write_results(frames, out) if out else write_results(frames, None, sys.stdout.buffer)
    except MetaError as error:
        fail(error)
    where = f" to {out}" if out else ""
    click.echo(f"{summary.analyses} analyses pooled{where}", err=True)
    if summary.not_converged:
        click.echo(f"warning: {summary.not_converged} analyses did not converge (converged=false); "
                   "their numbers are not reliable", err=True)

"""The result ``meta.pool`` returns: the core's PoolResult, plus its forest plot."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from meta.stats import results as core
from meta.storage import write_if_changed


class PoolResult(core.PoolResult):
    """One pooled analysis (see ``meta.stats.results.PoolResult`` for every attribute).

    Numbers are on the analysis scale (log for RR, OR, HR); ``to_frame()`` and ``to_dict()`` add
    ``*_exp`` back-transformed values for ratio measures; ``studies()`` gives one row per study;
    ``summary()`` the readable printout; ``forest()`` the forest plot.
    """

    @classmethod
    def from_core(cls, result: core.PoolResult) -> "PoolResult":
        return cls(**{f.name: getattr(result, f.name) for f in fields(result)})

    def forest(self, path: str | Path | None = None, **style):
        """The forest plot as a matplotlib Figure; with ``path``, also written as PNG or SVG (by suffix).

        Style: ``title`` (default "<measure>, <method>") and ``favours`` (the labels left and right of the
        null line, default ("treatment", "control"))."""
        from meta.errors import OptionError
        from meta.publish.plots import ForestData, figure_bytes, forest_plot

        unknown = sorted(set(style) - {"title", "favours"})
        if unknown:
            raise OptionError(f"forest() takes the style keywords title and favours; got {', '.join(unknown)}")
        title = style.get("title") or f"{self.measure}, {self.method}"
        figure = forest_plot(ForestData(title, self, tuple(style.get("favours", ("treatment", "control")))))
        if path is not None:
            fmt = Path(path).suffix.lower().lstrip(".")
            if fmt not in ("png", "svg"):
                raise OptionError(f"forest() writes .png or .svg files; got {str(path)!r}")
            write_if_changed(Path(path), figure_bytes(figure, formats=(fmt,))[fmt])
        return figure

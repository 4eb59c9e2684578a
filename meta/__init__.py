"""meta: living evidence synthesis in Python (effect sizes, pooling as metafor, plots, living tables).

The public API, flat at the top::

    import meta
    result = meta.pool(frame_or_csv, measure="RR")        # -> meta.PoolResult
    result.studies(); result.to_frame(); result.forest("forest.png")
    meta.bias(...), meta.metareg(..., mods=["dose"]), meta.read_sheet(path)
    curve = meta.doseresponse(dose_sheet, model="rcs"); curve.curve([8.75]); curve.plot("curve.png")
    review = meta.Review("."); review.validate(); review.pool("depression"); review.run()

Errors: ``meta.MetaError`` and its subclasses; ``meta.SheetError.problems`` lists every problem with its
file, row, column and fix. Names are imported on first use, so ``import meta`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from meta._version import __version__

_EXPORTS = {
    "pool": "meta.api.analyses",
    "bias": "meta.api.analyses",
    "metareg": "meta.api.analyses",
    "read_sheet": "meta.api.analyses",
    "doseresponse": "meta.api.doseresponse",
    "DoseResponseResult": "meta.api.doseresponse",
    "Review": "meta.api.review",
    "PoolResult": "meta.api.results",
    "BiasReport": "meta.stats.bias",
    "MetaRegression": "meta.stats.metareg",
    "MetaError": "meta.errors",
    "SheetError": "meta.errors",
    "SpecError": "meta.errors",
    "OptionError": "meta.errors",
    "Problem": "meta.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load lazily (PEP 562)
    from meta.api.analyses import bias, metareg, pool, read_sheet  # noqa: F401
    from meta.api.doseresponse import DoseResponseResult, doseresponse  # noqa: F401
    from meta.api.results import PoolResult  # noqa: F401
    from meta.api.review import Review  # noqa: F401
    from meta.errors import MetaError, OptionError, Problem, SheetError, SpecError  # noqa: F401
    from meta.stats.bias import BiasReport  # noqa: F401
    from meta.stats.metareg import MetaRegression  # noqa: F401


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'meta' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

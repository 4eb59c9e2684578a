"""The option vocabularies of the toolkit, checked once when options are built.

A wrong value fails at construction with a message that lists the allowed values (as PyMARE's
``Options`` do), so no estimator ever sees an unknown name.
"""

from __future__ import annotations

from dataclasses import dataclass

from meta.errors import OptionError

MEASURES = ("RR", "OR", "RD", "HR", "SMD", "MD", "GEN")
RATIO_MEASURES = ("RR", "OR", "HR")
METHODS = ("FE", "DL", "REML", "ML", "PM", "SJ", "HE", "EB", "HS")
ITERATIVE_METHODS = ("REML", "ML", "EB", "PM")
CI_METHODS = ("z", "knha")
MD_VARIANCES = ("unequal", "pooled")
I2_DEFINITIONS = ("typical", "mean")
ZERO_CELL_RULES = ("keep", "drop")

METHOD_NAMES = {
    "FE": "fixed effect (inverse variance)",
    "DL": "DerSimonian-Laird",
    "REML": "restricted maximum likelihood",
    "ML": "maximum likelihood",
    "PM": "Paule-Mandel",
    "SJ": "Sidik-Jonkman",
    "HE": "Hedges",
    "EB": "empirical Bayes",
    "HS": "Hunter-Schmidt",
}


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``; raise OptionError naming them otherwise."""
    if value not in allowed:
        raise OptionError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


@dataclass(frozen=True)
class PoolOptions:
    """How to pool: estimator, interval method and the conventions that differ between tools.

    Defaults follow metafor's ``rma.uni``: REML, z intervals, level 95, I^2 from the typical
    within-study variance (``i2def = "1"``), Fisher scoring stopped at a change below 1e-5.
    """

    method: str = "REML"
    ci: str = "z"
    level: float = 95.0
    i2_definition: str = "typical"
    threshold: float = 1e-5
    maxiter: int = 100
    qprofile: bool = True

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("ci", self.ci, CI_METHODS)
        check_choice("i2_definition", self.i2_definition, I2_DEFINITIONS)
        if not 50.0 <= float(self.level) < 100.0:
            raise OptionError(f"level must be a percentage from 50 to below 100; got {self.level}")
        if not self.threshold > 0:
            raise OptionError(f"threshold must be positive; got {self.threshold}")


@dataclass(frozen=True)
class EffectOptions:
    """How raw numbers become effect sizes (metafor ``escalc`` conventions by default).

    ``zero_cells``: ``keep`` adds 0.5 to every cell of a 2x2 table with a zero cell and keeps
    double-zero studies (metafor); ``drop`` leaves out double-zero studies for RR and OR (Cochrane).
    ``md_variance``: ``unequal`` uses sd1^2/n1 + sd2^2/n2 (metafor vtype "LS"); ``pooled`` the pooled
    SD (vtype "HO").
    """

    measure: str
    md_variance: str = "unequal"
    zero_cells: str = "keep"
    add: float = 0.5

    def __post_init__(self) -> None:
        check_choice("measure", self.measure, MEASURES)
        check_choice("md_variance", self.md_variance, MD_VARIANCES)
        check_choice("zero_cells", self.zero_cells, ZERO_CELL_RULES)

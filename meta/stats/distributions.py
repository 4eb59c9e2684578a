"""The few distribution functions the engine needs, from ``scipy.special`` (fast to import).

``scipy.stats`` takes half a second to import, more than a no-change ``meta run`` may take; these
are the same Cephes routines it calls underneath.
"""

from __future__ import annotations

import numpy as np
from scipy import special


def norm_isf(p):
    """Upper-tail quantile of the standard normal: z with P(Z > z) = p."""
    return -special.ndtri(p)


def norm_sf(x):
    return special.ndtr(-np.asarray(x, dtype=float))


def t_isf(p, df):
    """Upper-tail quantile of Student's t on ``df`` degrees of freedom."""
    return special.stdtrit(df, 1.0 - p)


def t_sf(x, df):
    return special.stdtr(df, -np.asarray(x, dtype=float))


def chi2_sf(x, df):
    return special.chdtrc(df, x)


def chi2_isf(p, df):
    """Upper-tail quantile of chi-square on ``df`` degrees of freedom."""
    return special.chdtri(df, p)


def chi2_ppf(p, df):
    """Lower-tail quantile of chi-square on ``df`` degrees of freedom."""
    return special.chdtri(df, 1.0 - p)


def chi2_cdf(x, df):
    return special.chdtr(df, x)


def f_sf(x, dfn, dfd):
    """Upper tail of the F distribution on (``dfn``, ``dfd``) degrees of freedom."""
    return special.fdtrc(dfn, dfd, x)

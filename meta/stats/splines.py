"""Restricted cubic splines as R's ``rms::rcs`` builds them, and R's default quantiles.

``rms::rcs(x, knots)`` calls ``Hmisc::rcspline.eval(x, knots, inclx = TRUE)`` with the default
``norm = 2``: for knots t_1 < ... < t_K the basis is x and, for j = 1..K-2,

    [(x - t_j)+^3 - (x - t_{K-1})+^3 (t_K - t_j)/(t_K - t_{K-1})
                  + (x - t_K)+^3 (t_{K-1} - t_j)/(t_K - t_{K-1})] / (t_K - t_1)^2

(Harrell 2015, Regression Modeling Strategies, sect. 2.4.5). dosresmeta uses whatever the formula
gives, so ``logrr ~ rcs(dose, k)`` has this basis (checked against Hmisc in
``reference/make_doseresponse_reference.R``).
"""

from __future__ import annotations

import numpy as np

DEFAULT_KNOT_PROBS = (0.1, 0.5, 0.9)


def quantile_type7(x, probs):
    """R's ``quantile(x, probs)`` (default type 7: linear interpolation of the order statistics)."""
    x = np.sort(np.asarray(x, dtype=float))
    h = (x.size - 1) * np.asarray(probs, dtype=float)
    lo = np.floor(h).astype(int)
    hi = np.minimum(lo + 1, x.size - 1)
    return x[lo] + (h - lo) * (x[hi] - x[lo])


def rcs_basis(x, knots):
    """Basis of ``Hmisc::rcspline.eval(x, knots, inclx = TRUE)`` (norm = 2): columns x, then K-2
    non-linear terms. ``x`` may be any shape; the result has one more axis of length K-1."""
    x = np.asarray(x, dtype=float)
    t = np.asarray(knots, dtype=float)
    k = t.size
    tk, tk1 = t[-1], t[-2]
    scale = (tk - t[0]) ** 2

    def cube(u):
        return np.maximum(u, 0.0) ** 3

    cols = [x]
    for j in range(k - 2):
        term = (cube(x - t[j]) - cube(x - tk1) * (tk - t[j]) / (tk - tk1)
                + cube(x - tk) * (tk1 - t[j]) / (tk - tk1))
        cols.append(term / scale)
    return np.stack(cols, axis=-1)


def person_time_knots(dose, person_time, dose_share=0.75, top_share=0.25):
    """Three knots as Garcia et al. 2023 place them (their repository's ``get_last_knot``): the last
    knot at the quantile below which the doses hold all but the top ``top_share`` of person-time (the
    top group starts with the doses at or above the ``dose_share`` quantile and takes the next largest
    dose while it holds less than ``top_share``), the others at the 0 and half that quantile."""
    dose = np.asarray(dose, dtype=float)
    person_time = np.asarray(person_time, dtype=float)
    top = dose >= quantile_type7(dose, dose_share)
    total = np.nansum(person_time)
    max_dose = dose[~top].max()
    while not np.nansum(person_time[top]) >= top_share * total:
        max_dose = dose[~top].max()
        top |= dose == max_dose
    last = float(np.mean(dose <= max_dose))
    return quantile_type7(dose, [0.0, last / 2, last])

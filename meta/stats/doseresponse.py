"""Dose-response meta-analysis of log relative risks, as R's dosresmeta fits it.

Method (Crippa & Orsini 2016, J Stat Softw 72(1); Orsini et al. 2012, Am J Epidemiol 175:66;
Gasparrini et al. 2012, Stat Med 31:3821):

1. Within-study covariance S_i of each study's non-referent log RRs from pseudo-counts
   (:mod:`meta.stats.pseudocounts`: ``gl``, ``hamling``, ``hamling-2017``) or diagonal
   (``independent``).
2. Design X_i: linear (d), quadratic (d, d^2) or restricted cubic spline
   (:func:`meta.stats.splines.rcs_basis`), each row minus the study's referent row.
3. First stage: GLS per study, b_i = (X_i'S_i^-1X_i)^-1 X_i'S_i^-1 y_i, V_i = (X_i'S_i^-1X_i)^-1.
4. Second stage: multivariate random effects with unstructured between-study covariance Psi,
   fitted by REML (default), ML or fixed effects, on the profiled likelihood of
   y_i ~ N(X_i beta, X_i Psi X_i' + S_i).

``proc``: dosresmeta's default ``2stage`` pools (b_i, V_i) with mixmeta/mvmeta
(b_i ~ N(beta, Psi + V_i)) and refuses studies with fewer non-referent rows than coefficients;
``1stage`` fits the stacked rows. Because b_i is sufficient for (beta, Psi) in study i
(its GLS residual is independent of b_i), both give the same ML and REML optimum whenever the
two-stage fit exists; ``proc="auto"`` (default) uses ``2stage`` when every study allows it and
``1stage`` otherwise, and the fit records which (``DoseResponseFit.proc``). The Q test follows the
procedure, as dosresmeta's ``qtest``: 2-stage Q = sum (b_i - b_FE)'V_i^-1(b_i - b_FE) on p(m-1)
df; 1-stage Q = sum r_i'S_i^-1 r_i (fixed-effect residuals) on (rows - p) df; I^2 = (Q - df)/Q in %.

The (RE)ML surface of Psi can have several local maxima; the fit climbs to the one mvmeta reaches
(its IGLS start and R's BFGS repeated step for step) and, by default, to full convergence there
(``optimum="converged"``); ``optimum="mvmeta"`` stops where mvmeta stops, which reproduces the
curves dosresmeta 2.0.1 produced to ~1e-14 (tests/test_doseresponse_garcia.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from meta.errors import MetaError
from meta.stats.distributions import chi2_sf, norm_isf
from meta.stats.pseudocounts import (
    COVARIANCES,
    TYPES,
    PseudoCountError,
    study_covariance,
)
from meta.stats.splines import DEFAULT_KNOT_PROBS, quantile_type7, rcs_basis

MODELS = ("linear", "quadratic", "rcs")
METHODS = ("REML", "ML", "FE")
PROCS = ("auto", "2stage", "1stage")
OPTIMA = ("converged", "mvmeta")
R_RELTOL = np.sqrt(np.finfo(float).eps)  # optim's default reltol, as mvmeta uses it
FALLBACKS = (None, "gl")


class DoseResponseError(MetaError):
    """A dose-response input or fit problem; ``study`` and ``column`` say where, ``fix`` how."""

    def __init__(self, message, study=None, column="", fix=""):
        self.study = study
        self.column = column
        self.fix = fix
        where = f"study {study}: " if study is not None else ""
        super().__init__(f"{where}{message}" + (f" Fix: {fix}" if fix else ""))


# ----------------------------------------------------------------------------- validation


def _is_referent(se):
    return ~np.isfinite(np.asarray(se, dtype=float))


def check_dose_arrays(study, dose, logrr, se, cases=None, n=None, type=None, *,
                      covariance="gl", model="rcs", knots=None, lenient=False):
    """Every problem of the input arrays, as a list of (study, row_index, column, message, fix).

    Checks: one referent row per study (se missing, logrr 0), positive se elsewhere, no duplicate
    dose within a study, cases <= n and both present and positive when the covariance needs them,
    a known ``type``, knots inside the dose range, and at least as many distinct doses as
    coefficients. ``row_index`` is 0-based in the arrays given (-1 for a whole-study problem).
    ``lenient=True`` accepts what dosresmeta accepts: a dose repeated within a study, and a
    referent row whose logrr is not 0 (dosresmeta ignores it: the referent is the row without se).
    """
    study = np.asarray(study)
    dose, logrr, se = (np.asarray(a, dtype=float) for a in (dose, logrr, se))
    problems = []
    needs_counts = covariance in ("gl", "hamling", "hamling-2017")
    cases_a = None if cases is None else np.asarray(cases, dtype=float)
    n_a = None if n is None else np.asarray(n, dtype=float)
    types = None if type is None else np.broadcast_to(np.asarray(type, dtype=object), study.shape)
    labels = list(dict.fromkeys(study.tolist()))
    for label in labels:
        rows = np.flatnonzero(study == label)
        ref = rows[_is_referent(se[rows])]
        if ref.size == 0:
            problems.append((label, -1, "se", "no referent row (a row with se missing)",
                             "give the referent category a row with logrr 0 and se empty"))
        elif ref.size > 1:
            for r in ref[1:]:
                problems.append((label, int(r), "se", "a second referent row (se missing)",
                                 "give each non-referent row its se; one referent row per study"))
        for r in ref if not lenient else ():
            if logrr[r] != 0:
                problems.append((label, int(r), "logrr", "referent row with logrr not 0",
                                 "set logrr 0 on the referent row (RR 1)"))
        for r in rows[~_is_referent(se[rows])]:
            if not se[r] > 0:
                problems.append((label, int(r), "se", "se not positive", "give a positive se"))
            if not np.isfinite(logrr[r]):
                problems.append((label, int(r), "logrr", "logrr missing", "give the log RR"))
        seen = {}
        for r in rows if not lenient else ():
            if dose[r] in seen:
                problems.append((label, int(r), "dose", f"dose {dose[r]:g} repeated in the study",
                                 "give each category of a study its own dose"))
            seen[dose[r]] = r
        if not np.all(np.isfinite(dose[rows])):
            problems.append((label, -1, "dose", "dose missing", "give every category a dose"))
        if needs_counts:
            problems += _count_problems(label, rows, cases_a, n_a, types, covariance)
    problems += _design_problems(study, dose, labels, model, knots)
    return problems


def _count_problems(label, rows, cases, n, types, covariance):
    out = []
    fix_c = "give cases and n (persons, or person-time for type ir) of every category, or use covariance='independent'"
    if cases is None or n is None:
        return [(label, -1, "cases" if cases is None else "n",
                 f"covariance '{covariance}' needs cases and n", fix_c)]
    for r in rows:
        if not (np.isfinite(cases[r]) and cases[r] > 0):
            out.append((label, int(r), "cases", "cases missing or not positive", fix_c))
        if not (np.isfinite(n[r]) and n[r] > 0):
            out.append((label, int(r), "n", "n missing or not positive", fix_c))
        elif np.isfinite(cases[r]) and cases[r] > n[r] and (types is None or types[r] != "ir"):
            out.append((label, int(r), "cases", f"cases {cases[r]:g} > n {n[r]:g}",
                        "n is the category's total (cases + non-cases)"))
    if types is None:
        out.append((label, -1, "type", "type missing", f"give type, one of {TYPES}"))
    else:
        kinds = set(types[rows].tolist())
        if len(kinds) != 1 or not kinds <= set(TYPES):
            out.append((label, -1, "type", f"type {sorted(map(str, kinds))} not one of {TYPES}",
                        "give one type per study: cc, ir or ci"))
    return out


def _design_problems(study, dose, labels, model, knots):
    out = []
    finite = dose[np.isfinite(dose)]
    if finite.size == 0:
        return out
    if model == "rcs" and knots is not None:
        k = np.asarray(knots, dtype=float)
        if k.size < 3 or np.any(np.diff(k) <= 0):
            out.append((None, -1, "knots", "need 3 or more increasing knots", "give sorted, distinct knots"))
        if np.any(k < finite.min()) or np.any(k > finite.max()):
            out.append((None, -1, "knots", f"knots outside the dose range [{finite.min():g}, {finite.max():g}]",
                        "put knots inside the observed doses"))
    n_coef = _n_coef(model, knots)
    if np.unique(finite).size < n_coef + 1:
        out.append((None, -1, "dose", f"{np.unique(finite).size} distinct doses for {n_coef} coefficients",
                    "use a simpler model (linear) or more studies"))
    return out


def _n_coef(model, knots):
    if model == "linear":
        return 1
    if model == "quadratic":
        return 2
    return (len(knots) if knots is not None else len(DEFAULT_KNOT_PROBS)) - 1


def _raise_first(problems):
    if problems:
        label, _row, column, message, fix = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise DoseResponseError(message + more, study=label, column=column, fix=fix)


# ----------------------------------------------------------------------------- design


def dose_design(dose, model, knots=None):
    """Design rows (not centred) of doses ``dose`` for ``model``: linear, quadratic or rcs."""
    d = np.asarray(dose, dtype=float)
    if model == "linear":
        return d[..., None]
    if model == "quadratic":
        return np.stack([d, d**2], axis=-1)
    return rcs_basis(d, knots)


def default_knots(dose, probs=DEFAULT_KNOT_PROBS):
    """Knots at quantiles of all doses (R ``quantile`` type 7), as dosresmeta's examples do."""
    return quantile_type7(dose, probs)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class StudyFit:
    """One study: its within-study covariance, pseudo-counts and first-stage GLS coefficients."""

    study: object
    covariance: np.ndarray
    pseudo_cases: np.ndarray | None
    pseudo_n: np.ndarray | None
    coefficients: np.ndarray | None  # None when the study has fewer rows than coefficients
    vcov: np.ndarray | None

    def to_dict(self):
        return {"study": _plain(self.study), "covariance": _list(self.covariance),
                "pseudo_cases": _list(self.pseudo_cases), "pseudo_n": _list(self.pseudo_n),
                "coefficients": _list(self.coefficients)}


@dataclass(frozen=True)
class DosePrediction:
    """Pooled relative risk at ``dose`` against ``reference`` (ratio scale) and its 95% CI."""

    dose: np.ndarray
    reference: float
    log_estimate: np.ndarray
    se: np.ndarray
    estimate: np.ndarray
    ci_lower: np.ndarray
    ci_upper: np.ndarray

    def to_records(self):
        return [{"dose": float(d), "estimate": float(e), "ci_lower": float(lo), "ci_upper": float(hi)}
                for d, e, lo, hi in zip(self.dose, self.estimate, self.ci_lower, self.ci_upper)]


@dataclass(frozen=True)
class DoseResponseFit:
    """A pooled dose-response curve; ``to_dict()`` is the ``meta doseresponse`` contract."""

    k: int
    model: str
    knots: np.ndarray | None
    method: str
    covariance: str
    covariance_used: str
    proc: str
    coefficients: np.ndarray
    vcov: np.ndarray
    between_study: np.ndarray | None
    q: float
    q_df: int
    q_p: float
    i2: float
    nonlinearity: dict
    studies: tuple
    loglik: float
    converged: bool
    predictions: DosePrediction | None = field(default=None)

    def predict(self, doses, reference=0.0, level=0.95):
        """RR at ``doses`` against ``reference`` with its Wald CI (dosresmeta ``predict``)."""
        d = np.atleast_1d(np.asarray(doses, dtype=float))
        x = dose_design(d, self.model, self.knots) - dose_design(np.asarray(reference, float),
                                                                   self.model, self.knots)
        log_est = x @ self.coefficients
        se = np.sqrt(np.einsum("ij,jk,ik->i", x, self.vcov, x))
        z = norm_isf((1.0 - level) / 2.0)
        return DosePrediction(d, float(reference), log_est, se, np.exp(log_est),
                              np.exp(log_est - z * se), np.exp(log_est + z * se))

    def to_dict(self):
        return {
            "k": self.k, "model": self.model, "knots": _list(self.knots), "method": self.method,
            "covariance": self.covariance, "covariance_used": self.covariance_used,
            "coefficients": _list(self.coefficients), "vcov": _list(self.vcov),
            "between_study": _list(self.between_study), "q": self.q, "q_df": self.q_df,
            "q_p": self.q_p, "i2": self.i2, "nonlinearity": dict(self.nonlinearity),
            "predictions": [] if self.predictions is None else self.predictions.to_records(),
            "studies": [s.to_dict() for s in self.studies],
        }


def _list(a):
    return None if a is None else np.asarray(a, dtype=float).tolist()


def _plain(x):
    return x.item() if isinstance(x, np.generic) else x


# ----------------------------------------------------------------------------- fitting


def fit_doseresponse(study, dose, logrr, se, cases=None, n=None, type=None, *, model="rcs",
                     knots=None, covariance="gl", method="REML", fallback=None, predict=None,
                     reference=0.0, proc="auto", lenient=False, optimum="converged"):
    """Fit a dose-response meta-analysis (dosresmeta ``dosresmeta(logrr ~ f(dose), ...)``).

    Arrays have one row per exposure category, the referent row of each study with logrr 0 and se
    NaN. ``type`` is one of cc/ir/ci per row or one for all. ``knots`` (rcs) default to the 10/50/90%
    quantiles of all doses. ``fallback="gl"`` refits the whole analysis with Greenland-Longnecker
    when any study's pseudo-counts fail (as Garcia et al. 2023 did); ``covariance_used`` records it.
    ``lenient`` as in :func:`check_dose_arrays`. ``optimum="mvmeta"`` stops the (RE)ML climb where
    mvmeta's optim stops (see :func:`_fit_psi`) instead of at the converged maximum.
    """
    _check_option("model", model, MODELS)
    _check_option("covariance", covariance, COVARIANCES)
    _check_option("method", method, METHODS)
    _check_option("fallback", fallback, FALLBACKS)
    _check_option("proc", proc, PROCS)
    _check_option("optimum", optimum, OPTIMA)
    study = np.asarray(study)
    dose = np.asarray(dose, dtype=float)
    if model == "rcs" and knots is None:
        knots = default_knots(dose)
    knots = None if model != "rcs" else np.asarray(knots, dtype=float)
    _raise_first(check_dose_arrays(study, dose, logrr, se, cases, n, type,
                                   covariance=covariance, model=model, knots=knots, lenient=lenient))
    try:
        blocks = _study_blocks(study, dose, logrr, se, cases, n, type, model, knots, covariance)
        used = covariance
    except DoseResponseError:
        if fallback is None:
            raise
        blocks = _study_blocks(study, dose, logrr, se, cases, n, type, model, knots, fallback)
        used = fallback
    fit = _pool(blocks, model, knots, method, covariance, used, proc, optimum)
    if predict is not None:
        fit = replace(fit, predictions=fit.predict(predict, reference))
    return fit


def _check_option(name, value, allowed):
    if value not in allowed:
        raise DoseResponseError(f"{name} {value!r} not one of {allowed}", column=name,
                                fix=f"use one of {allowed}")


@dataclass(frozen=True)
class _Block:
    study: object
    x: np.ndarray  # non-referent rows, centred at the referent
    y: np.ndarray
    s: np.ndarray
    a: np.ndarray | None
    n: np.ndarray | None


def _study_blocks(study, dose, logrr, se, cases, n, type_, model, knots, covariance):
    logrr, se = np.asarray(logrr, float), np.asarray(se, float)
    cases = None if cases is None else np.asarray(cases, float)
    n = None if n is None else np.asarray(n, float)
    types = None if type_ is None else np.broadcast_to(np.asarray(type_, dtype=object), study.shape)
    blocks = []
    for label in dict.fromkeys(study.tolist()):
        rows = np.flatnonzero(study == label)
        ref = _is_referent(se[rows])
        v = np.where(ref, 0.0, se[rows] ** 2)
        try:
            s, a, nn = study_covariance(
                logrr[rows], v, None if cases is None else cases[rows],
                None if n is None else n[rows], None if types is None else types[rows][0],
                ref, covariance)
        except PseudoCountError as exc:
            raise DoseResponseError(f"{covariance} covariance failed: {exc}", study=label,
                                    column="cases", fix="check cases/n/se, or use fallback='gl'") from exc
        x = dose_design(dose[rows], model, knots)
        x = x[~ref] - x[ref][0]
        blocks.append(_Block(label, x, logrr[rows][~ref], s, a, nn))
    return blocks


def _gls(x, y, s):
    """First-stage GLS of one study: (b, V)."""
    si_x = np.linalg.solve(s, x)
    v = np.linalg.inv(x.T @ si_x)
    v = (v + v.T) / 2.0
    return v @ (si_x.T @ y), v


def _pool(blocks, model, knots, method, covariance, used, proc, optimum):
    p = blocks[0].x.shape[1]
    m = len(blocks)
    firsts = [(_gls(b.x, b.y, b.s) if b.x.shape[0] >= p else (None, None)) for b in blocks]
    if proc == "auto":
        proc = "2stage" if all(b.x.shape[0] >= p for b in blocks) and m > 1 else "1stage"
    if proc == "2stage" and any(b.x.shape[0] < p for b in blocks):
        short = next(b.study for b in blocks if b.x.shape[0] < p)
        raise DoseResponseError("two-stage fit needs at least as many non-referent rows as "
                                "coefficients", study=short, column="dose", fix="use proc='1stage'")
    if m == 1:
        method = "FE"  # dosresmeta: a single study is a fixed-effect GLS
    if proc == "2stage":
        xs = np.broadcast_to(np.eye(p), (m, p, p)).copy()
        ys = np.array([f[0] for f in firsts])
        ss = np.array([f[1] for f in firsts])
    else:
        xs, ys, ss = _stack(blocks)
    fe = _profile_fit(xs, ys, ss, np.zeros((p, p)))
    q = float(fe["quad"])
    q_df = int(p * (m - 1)) if proc == "2stage" else int(sum(b.x.shape[0] for b in blocks) - p)
    if method == "FE":
        res, psi, converged = fe, None, True
    else:
        psi, converged = _fit_psi(xs, ys, ss, fe, reml=(method == "REML"), optimum=optimum)
        res = _profile_fit(xs, ys, ss, psi)
    beta, vcov = res["beta"], res["vcov"]
    studies = tuple(StudyFit(b.study, b.s, b.a, b.n, f[0], f[1]) for b, f in zip(blocks, firsts))
    return DoseResponseFit(
        k=m, model=model, knots=knots, method=method, covariance=covariance,
        covariance_used=used, proc=proc, coefficients=beta, vcov=vcov, between_study=psi,
        q=q, q_df=q_df, q_p=float(chi2_sf(q, q_df)) if q_df > 0 else float("nan"),
        i2=max(0.0, (q - q_df) / q) * 100.0 if q > 0 else 0.0,
        nonlinearity=_wald_nonlinear(beta, vcov), studies=studies,
        loglik=float(res["loglik"](method == "REML")), converged=converged)


def _stack(blocks):
    """Pad study blocks to a common row count: padded rows have X = 0, y = 0, S = 1 (no effect)."""
    kmax = max(b.x.shape[0] for b in blocks)
    m, p = len(blocks), blocks[0].x.shape[1]
    xs = np.zeros((m, kmax, p))
    ys = np.zeros((m, kmax))
    ss = np.broadcast_to(np.eye(kmax), (m, kmax, kmax)).copy()
    for i, b in enumerate(blocks):
        k = b.x.shape[0]
        xs[i, :k], ys[i, :k], ss[i, :k, :k] = b.x, b.y, b.s
    return xs, ys, ss


def _wald_nonlinear(beta, vcov):
    """Wald test that the coefficients beyond the first (the non-linear terms) are all zero."""
    if beta.size < 2:
        return {"chi2": None, "df": None, "p": None}
    b, v = beta[1:], vcov[1:, 1:]
    chi2 = float(b @ np.linalg.solve(v, b))
    return {"chi2": chi2, "df": int(b.size), "p": float(chi2_sf(chi2, b.size))}


def _profile_fit(xs, ys, ss, psi):
    """GLS of beta given Psi on batched blocks; returns beta, vcov, the pieces of the (RE)ML
    log-likelihood and its gradient with respect to Psi."""
    sigma = ss + xs @ psi @ np.swapaxes(xs, 1, 2)
    chol = np.linalg.cholesky(sigma)
    sinv = np.linalg.inv(sigma)
    w = np.swapaxes(xs, 1, 2) @ sinv @ xs
    u = np.einsum("mkp,mkl,ml->p", xs, sinv, ys)
    h = w.sum(axis=0)
    vcov = np.linalg.inv(h)
    beta = vcov @ u
    r = ys - xs @ beta
    sr = np.einsum("mkl,ml->mk", sinv, r)
    quad = float(np.einsum("mk,mk->", r, sr))
    logdet = 2.0 * float(np.log(np.diagonal(chol, axis1=1, axis2=2)).sum())
    logdet_h = float(np.linalg.slogdet(h)[1])
    nobs = int(np.count_nonzero(np.any(xs != 0, axis=2)))
    p = h.shape[0]

    def loglik(reml):
        if reml:  # mvmeta/mixmeta's constant includes + 0.5 log|sum X_i'X_i|
            logdet_xx = float(np.linalg.slogdet(np.einsum("mkp,mkq->pq", xs, xs))[1])
            return -0.5 * ((nobs - p) * np.log(2 * np.pi) + logdet + logdet_h + quad - logdet_xx)
        return -0.5 * (nobs * np.log(2 * np.pi) + logdet + quad)

    a = np.einsum("mkp,mk->mp", xs, sr)

    def grad_psi(reml):
        g = -0.5 * (w.sum(axis=0) - a.T @ a)
        if reml:
            g += 0.5 * np.einsum("mij,jk,mkl->il", w, vcov, w)
        return g

    return {"beta": beta, "vcov": vcov, "quad": quad, "loglik": loglik, "grad": grad_psi}


IGLS_ITER = 10  # mvmeta's igls.iter (dosresmeta.control igls.inititer): IGLS steps for the start
IGLS_PSI0 = 1e-3  # mvmeta initpar: IGLS starts from diag(0.001)
IGLS_MIN_EIGEN = 1e-8  # mvmeta iter.igls forces Psi positive definite with eigenvalues >= 1e-8
POLISH_GTOL = 1e-10  # the converged optimum: scipy BFGS to this gradient (rescaled parameters)
POLISH_MAXIT = 5000


def _igls_step(xs, ys, ss, psi):
    """One IGLS update of Psi (mvmeta ``iter.igls``; Goldstein 1986): weighted least squares of
    the residual cross-products minus S_i on the components of X_i Psi X_i', weights
    (Sigma_i kron Sigma_i)^-1, then eigenvalues floored at 1e-8."""
    p = psi.shape[0]
    res = _profile_fit(xs, ys, ss, psi)
    sigma = ss + xs @ psi @ np.swapaxes(xs, 1, 2)
    sinv = np.linalg.inv(sigma)
    r = ys - xs @ res["beta"]
    f = np.einsum("mk,ml->mkl", r, r) - ss
    basis = []
    for a, b in zip(*np.tril_indices(p)):
        e = np.zeros((p, p))
        e[a, b] = e[b, a] = 1.0
        basis.append(xs @ e @ np.swapaxes(xs, 1, 2))
    pz = [sinv @ mq for mq in basis]
    normal = np.array([[np.einsum("mij,mji->", pq, pr) for pr in pz] for pq in pz])
    sf = sinv @ f
    rhs = np.array([np.einsum("mij,mji->", pq, sf) for pq in pz])
    theta = np.linalg.lstsq(normal, rhs, rcond=None)[0]
    new = np.zeros((p, p))
    new[np.tril_indices(p)] = theta
    new = new + np.tril(new, -1).T
    vals, vecs = np.linalg.eigh(new)
    return (vecs * np.maximum(vals, IGLS_MIN_EIGEN)) @ vecs.T


def _fit_psi(xs, ys, ss, fe, reml, optimum="converged"):
    """Maximise the profiled (RE)ML over Psi along mvmeta's path, then to convergence.

    mvmeta (``mvmeta.reml``/``mvmeta.ml``, ``initpar``): 10 IGLS steps from diag(0.001), then R's
    BFGS (``optim``, 100 iterations, reltol 1.5e-8, analytic gradient) on the lower Cholesky factor
    L of Psi = L L' (parameters column by column). The (RE)ML surface can have several local maxima
    (one with Psi singular, one inside, ...); the one mvmeta's path climbs to is what dosresmeta
    reports, so this path is repeated step for step (:func:`r_bfgs`). mvmeta stops within about
    1e-7 of that maximum: ``optimum="mvmeta"`` stops there too (dosresmeta's numbers to rounding);
    ``"converged"`` (default) finishes the climb from that point with scipy's BFGS (gradient below
    1e-10 in parameters rescaled by D = sqrt(m diag(V_FE))).
    Returns (Psi, converged)."""
    p = fe["vcov"].shape[0]
    rows, cols = np.tril_indices(p)
    order = np.lexsort((rows, cols))  # R's column-wise order of the lower triangle
    rows, cols = rows[order], cols[order]
    psi0 = np.eye(p) * IGLS_PSI0
    for _ in range(IGLS_ITER):
        psi0 = _igls_step(xs, ys, ss, psi0)

    def as_lower(theta):
        lo = np.zeros((p, p))
        lo[rows, cols] = theta
        return lo

    def negloglik(theta):
        lo = as_lower(theta)
        try:
            return -_profile_fit(xs, ys, ss, lo @ lo.T)["loglik"](reml)
        except np.linalg.LinAlgError:
            return np.inf

    def neggrad(theta):
        lo = as_lower(theta)
        g = _profile_fit(xs, ys, ss, lo @ lo.T)["grad"](reml)
        return -(2.0 * g @ lo)[rows, cols]

    theta, converged = r_bfgs(negloglik, neggrad, np.linalg.cholesky(psi0)[rows, cols])
    if optimum == "mvmeta":
        lo = as_lower(theta)
        return lo @ lo.T, converged
    # finish the climb; scipy.optimize is imported here, not with the module (0.5 s of import time)
    from scipy.optimize import minimize

    scale = np.sqrt(np.diag(fe["vcov"]) * xs.shape[0])[cols]  # rescaled coordinates u = theta / scale
    run = minimize(lambda u: negloglik(u * scale), theta / scale, jac=lambda u: neggrad(u * scale) * scale,
                   method="BFGS", options={"gtol": POLISH_GTOL, "maxiter": POLISH_MAXIT})
    lo = as_lower(run.x * scale)
    return lo @ lo.T, bool(run.success or np.max(np.abs(run.jac)) < 1e-6)


def r_bfgs(fn, gr, start, maxit=100, reltol=R_RELTOL):
    """Minimise ``fn`` step for step as R's ``optim(method = "BFGS")`` (``vmmin`` in R's
    src/appl/optim.c; Nash 1990, Compact Numerical Methods, Algorithm 21): variable-metric updates
    of an inverse Hessian started at I, backtracking by 0.2 to an Armijo point (1e-4), stop when
    the relative change of ``fn`` is below ``reltol`` or after ``maxit`` gradients.
    Returns (x, converged: stopped before ``maxit``)."""
    n = start.size
    b = np.asarray(start, dtype=float).copy()
    f = fmin = fn(b)
    if not np.isfinite(f):
        raise DoseResponseError("initial value of the likelihood is not finite")
    g = gr(b)
    iterations, gradcount, ilast = 1, 1, 1
    hess = np.eye(n)
    while True:
        if ilast == gradcount:
            hess = np.eye(n)
        x, c = b.copy(), g.copy()
        t = -hess @ g
        gradproj = float(t @ g)
        if gradproj < 0.0:
            step, accepted = 1.0, False
            while True:
                b = x + step * t
                unchanged = int(np.sum(10.0 + x == 10.0 + b))
                if unchanged < n:
                    f = fn(b)
                    accepted = bool(np.isfinite(f) and f <= fmin + gradproj * step * 1e-4)
                    if not accepted:
                        step *= 0.2
                if unchanged == n or accepted:
                    break
            count = unchanged
            if not abs(f - fmin) > reltol * (abs(fmin) + reltol):
                count = n
                fmin = f
            if count < n:
                fmin = f
                g = gr(b)
                gradcount += 1
                iterations += 1
                t = step * t
                c = g - c
                d1 = float(t @ c)
                if d1 > 0:
                    hc = hess @ c
                    d2 = 1.0 + float(hc @ c) / d1
                    hess = hess + (d2 * np.outer(t, t) - np.outer(hc, t) - np.outer(t, hc)) / d1
                else:
                    ilast = gradcount
            elif ilast < gradcount:
                count = 0
                ilast = gradcount
        else:
            count = 0
            if ilast == gradcount:
                count = n
            else:
                ilast = gradcount
        if iterations >= maxit:
            break
        if gradcount - ilast > 2 * n:
            ilast = gradcount
        if count == n and ilast == gradcount:
            break
    return b, iterations < maxit

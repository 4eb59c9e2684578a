"""``meta run``: every analysis spec -> pooled results, plots, living summary, history and site.

Incremental: an analysis whose inputs (spec, selected sheet rows, their publications) hash to the
value stored in its ``analysis.json``, written by the same toolkit version, is not re-fitted or re-drawn. All
analyses that did change are pooled together in one batch call of the engine (overall, subgroups
and every cumulative step). Every file is written atomically and only when its content changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from meta._version import __version__
from meta.errors import MetaError, SheetError
from meta.publish import dose_run
from meta.publish.living import (
    OUTPUT,
    PLOTS,
    Version,
    changes_text,
    describe_change,
    history_text,
    latest,
    read_history,
    selected_rows,
    stored,
    summary_csv,
    summary_markdown,
    summary_rows,
    update_history,
)
from meta.sheets.analyses import two_by_two
from meta.sheets.dose_specs import load_dose_specs
from meta.sheets.evidence import validate_project
from meta.sheets.load import check_effect_table, load_sheet
from meta.sheets.review import load_review
from meta.sheets.specs import Spec, load_specs
from meta.stats.certainty import rate
from meta.stats.distributions import chi2_sf, norm_isf
from meta.stats.effects import EffectError, EffectSizes, arm_size, compute_effects
from meta.stats.options import PoolOptions
from meta.stats.pooling import pool_batch
from meta.stats.results import PoolResult, SubgroupTest, result_from_fit
from meta.storage import locked, write_if_changed

# Only the forest plot is also written as SVG: the others are drawn for the site, and SVG doubles
# the drawing time that dominates a cold `meta run`.


@dataclass
class AnalysisRun:
    """One spec's rows, effect sizes and (once fitted) results."""

    spec: Spec
    rows: pd.DataFrame
    effects: EffectSizes | None  # None for an unchanged analysis (its record is cached)
    input_hash: str
    cached: dict | None = None
    result: PoolResult | None = None
    subgroups: list = field(default_factory=list)
    subgroup_test: object = None
    cumulative: list = field(default_factory=list)
    subgroup_of: list = field(default_factory=list)
    fixed: PoolResult | None = None
    low_risk: PoolResult | None = None
    bias: object = None
    influence: tuple = ()
    metareg: object = None
    metareg_note: str = ""
    tsa: object = None
    tsa_note: str = ""

    @property
    def changed(self) -> bool:
        return self.cached is None


@dataclass(frozen=True)
class RunReport:
    """What a run did: the analyses re-computed, the files written, the versions published."""

    analyses: int
    recomputed: tuple[str, ...]
    written: tuple[str, ...]
    published: tuple[str, ...]

    def to_dict(self) -> dict:
        """The ``meta run --json`` object."""
        return {"analyses": self.analyses, "recomputed": list(self.recomputed), "written": list(self.written),
                "published": list(self.published)}


def run(root: Path, date: str, progress: Callable[[str, str], None] = lambda name, status: None,
        force: bool = False) -> RunReport:
    """Run every spec under ``root`` and publish the outputs; raises SheetError on invalid sheets.

    Runs of one project take turns (a lock on analyses/history.csv): each re-writes the history it
    read, so two at once would lose the versions of one.
    """
    root = Path(root)
    _validate(root)
    (root / "analyses").mkdir(exist_ok=True)
    with locked(root / "analyses" / "history.csv"):
        return _run_validated(root, date, progress, force)


VALIDATED = Path(".meta-cache") / "validated"  # the digest of the inputs last validated without a problem


def _validate(root: Path) -> None:
    """``meta validate`` of the whole project, skipped when the sheets, specs, review.toml and the
    toolkit are byte for byte those of the last run that passed it (the digest in ``.meta-cache/``)."""
    digest = hashlib.sha256(__version__.encode())
    files = sorted(p for p in (root / "extraction").rglob("*.csv") if not any(part.startswith("_") for part in
                                                                            p.relative_to(root).parts))
    for path in files + sorted((root / "analyses").glob("*.toml")) + [root / "review.toml"]:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"")
    key = digest.hexdigest()
    cache = root / VALIDATED
    if cache.is_file() and cache.read_text() == key:
        return
    report = validate_project(root)
    if report.problems:
        raise SheetError(report.problems)
    write_if_changed(cache, key)


def _run_validated(root: Path, date: str, progress: Callable[[str, str], None], force: bool) -> RunReport:
    studies = _studies(root)
    sheets: dict[Path, object] = {}
    runs = [_prepare(root, spec, studies, force, sheets) for spec in load_specs(root)]
    curves = [dose_run.prepare(root, spec, studies, force, sheets) for spec in load_dose_specs(root)]
    changed = [r for r in runs if r.changed]
    changed_curves = [c for c in curves if c.changed]
    with _renderers(len(changed) + len(changed_curves)) as renderers:  # they load matplotlib while this pools
        _fit(changed)
        drawing = []
        for r in sorted(changed, key=lambda r: -r.effects.k):  # the largest plots first: fewer idle ends
            _complete(r)
            drawing.append((r, renderers.submit(_render, r) if renderers else None))
        for c in changed_curves:
            dose_run.fit(c, root)
            drawing.append((c, renderers.submit(dose_run.render, c) if renderers else None))
        rendered = [(r, future.result() if future else (dose_run.render(r) if isinstance(r, dose_run.DoseRun)
                                                        else _render(r))) for r, future in drawing]
    written: list[str] = []

    def write(path: Path, content) -> None:
        if write_if_changed(root / path, content):
            written.append(str(path))

    new_records = {}
    for r, files in rendered:
        for path, content in files.items():
            write(path, content)
        stale = root / OUTPUT / r.spec.name / "sequential.png"
        if isinstance(r, AnalysisRun) and r.tsa is None and stale.exists():  # a TSA no longer made
            stale.unlink()
            written.append(f"removed {stale.relative_to(root)}")
        new_records[r.spec.name] = (dose_run.record(r, studies) if isinstance(r, dose_run.DoseRun)
                                    else _record(r, studies))
        write(OUTPUT / r.spec.name / "analysis.json",
              json.dumps(new_records[r.spec.name], indent=1, sort_keys=True, allow_nan=False) + "\n")
    everything = runs + curves
    for r in everything:
        progress(r.spec.name, "re-computed" if r.changed else "unchanged")
    records = [r.cached if not r.changed else new_records[r.spec.name] for r in everything]
    _remove_stale_outputs(root, {r.spec.name for r in everything}, written)
    published = _publish_living(root, records, date, write)
    from meta.publish.site import (
        build_site,  # the site needs jinja2; imported only when publishing
    )

    build_site(root, records, write)
    return RunReport(len(everything), tuple(r.spec.name for r in changed + changed_curves), tuple(written),
                     tuple(published))


# --- preparing and fitting -----------------------------------------------------------------------


def _studies(root: Path) -> dict[str, dict]:
    frame, problems = load_sheet(root / "extraction" / "studies.csv")
    if problems:
        raise SheetError(problems)
    return {row["study_id"]: {k: ("" if pd.isna(v) else str(v)) for k, v in row.items()}
            for _, row in frame.iterrows()}


def _prepare(root: Path, spec: Spec, studies: dict, force: bool, sheets: dict) -> AnalysisRun:
    """The spec's rows and input hash; effect sizes only when the analysis must be re-computed.

    ``sheets`` holds the sheets already read in this run, so specs sharing a sheet read it once.
    """
    chosen, input_hash = selected_rows(spec, studies, sheets)
    cached = None if force else _cached(root, spec.name, input_hash)
    if cached is not None:
        return AnalysisRun(spec, chosen, None, input_hash, cached)
    typed, problems = check_effect_table(chosen, str(spec.sheet.relative_to(root.resolve())),
                                         spec.effect_options.measure)
    if problems:
        raise SheetError(problems)
    try:
        effects = compute_effects(typed, spec.effect_options)
    except EffectError as error:
        raise EffectError(f"{spec.sheet.relative_to(root.resolve())} (analysis {spec.name}): {error}") from None
    return AnalysisRun(spec, typed, effects, input_hash, None)


def _cached(root: Path, name: str, input_hash: str) -> dict | None:
    """The stored record of an analysis whose inputs hash to ``input_hash``, made by this version of
    the toolkit, and whose plots exist (a new toolkit re-draws everything; the history records a new
    version only where a result changed, as the hash covers the data only)."""
    folder = root / OUTPUT / name
    try:
        record = json.loads((folder / "analysis.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    files = [f"{plot}.{fmt}" for plot, formats in PLOTS.items() for fmt in formats]
    if record.get("tsa"):
        files += ["sequential.png"]
    made_by = (record.get("result") or {}).get("provenance", {}).get("version")
    if record.get("input_hash") != input_hash or made_by != __version__ \
            or not all((folder / f).exists() for f in files):
        return None
    return record


def _subset(effects: EffectSizes, keep: list[int]) -> EffectSizes:
    return EffectSizes(effects.measure, tuple(effects.labels[i] for i in keep), tuple(effects.years[i] for i in keep),
                       effects.yi[keep], effects.vi[keep], tuple(effects.rows[i] for i in keep),
                       tuple(s for s in effects.corrected if s in {effects.labels[i] for i in keep}),
                       (), ())


def _fit(runs: list[AnalysisRun]) -> None:
    """Pool every analysis, subgroup and cumulative step of ``runs`` in one batch per option set."""
    jobs: list[tuple[PoolOptions, EffectSizes, Callable[[PoolResult], None]]] = []
    for r in runs:
        e = r.effects
        jobs.append((r.spec.pool_options, e, lambda res, r=r: setattr(r, "result", res)))
        fixed_options = replace(r.spec.pool_options, method="FE", ci="z")
        jobs.append((fixed_options, e, lambda res, r=r: setattr(r, "fixed", res)))
        low = _low_risk_of_bias(r)
        if low:
            jobs.append((r.spec.pool_options, _subset(e, low), lambda res, r=r: setattr(r, "low_risk", res)))
        order = sorted(range(e.k), key=lambda i: (_year(e.years[i]), e.labels[i]))
        r.cumulative = [None] * e.k
        for step in range(e.k):
            label = e.labels[order[step]]
            jobs.append((r.spec.pool_options, _subset(e, sorted(order[: step + 1])),
                         lambda res, r=r, step=step, label=label: r.cumulative.__setitem__(step, (label, res))))
        if r.spec.subgroup:
            levels = r.rows[r.spec.subgroup].fillna("not reported").astype(str).tolist()
            by_row = dict(zip(r.rows.index, levels))
            of = [by_row[row] for row in e.rows]
            r.subgroup_of = of
            for level in sorted(set(of)):
                keep = [i for i, g in enumerate(of) if g == level]
                jobs.append((r.spec.pool_options, _subset(e, keep),
                             lambda res, r=r, level=level: r.subgroups.append((level, res))))
    by_options: dict[PoolOptions, list] = {}
    for job in jobs:
        by_options.setdefault(job[0], []).append(job)
    for options, group in by_options.items():
        yi = np.concatenate([e.yi for _, e, _ in group])
        vi = np.concatenate([e.vi for _, e, _ in group])
        sizes = np.array([e.k for _, e, _ in group])
        fit = pool_batch(yi, vi, sizes, options)
        for row, (_, e, assign) in enumerate(group):
            assign(result_from_fit(fit, row, e, options))


def _complete(r: AnalysisRun) -> None:
    """What an analysis needs beyond its pooled fits: subgroup test, bias, influence, meta-regression, TSA."""
    from meta.stats.bias import bias_report  # imported only when something changed

    r.subgroups.sort(key=lambda item: item[0])
    r.subgroup_test = _subgroup_test([res for _, res in r.subgroups]) if len(r.subgroups) > 1 else None
    r.bias = (bias_report(r.result, r.spec.pool_options, two_by_two(r.rows, r.spec.effect_options, r.effects))
              if r.effects.k >= 2 else None)
    r.influence = _influence(r) if r.effects.k >= 3 else ()
    if r.spec.moderators:
        r.metareg, r.metareg_note = _meta_regression(r)
    if r.spec.tsa:
        r.tsa, r.tsa_note = _sequential(r)


def _meta_regression(r: AnalysisRun):
    """Meta-regression on the spec's moderators (numeric columns of the sheet), or why not."""
    from meta.stats.metareg import fit_metareg

    rows = r.rows.loc[list(r.effects.rows), list(r.spec.moderators)]
    table = rows.apply(pd.to_numeric, errors="coerce")
    try:
        return fit_metareg(r.effects.yi, r.effects.vi, table.reset_index(drop=True), method=r.spec.pool_options.method,
                           test=r.spec.pool_options.ci, studies=r.effects.labels), ""
    except MetaError as error:
        return None, f"not computed: {error}"


def _influence(r: AnalysisRun) -> tuple:
    """metafor's case-deletion diagnostics, or none where the model cannot be refitted without a study."""
    from meta.stats.bias import influence

    try:
        return influence(r.effects.labels, r.effects.yi, r.effects.vi, r.spec.pool_options)
    except MetaError:
        return ()


def _sequential(r: AnalysisRun):
    """Trial sequential analysis of one analysis as its spec's [tsa] table asks (or why not)."""
    from meta.stats.tsa import AnticipatedEffect, trial_sequential_analysis

    designs = set(r.rows.loc[list(r.effects.rows), "design"].dropna()) if "design" in r.rows else set()
    if designs - {"rct"}:
        return None, ("not applicable: trial sequential analysis is a method for randomised trials, and this "
                      f"analysis pools {', '.join(sorted(d.replace('_', ' ') for d in designs - {'rct'}))} studies")
    t = r.spec.tsa
    if "anticipated_rrr" in t:
        anticipated = AnticipatedEffect("binary", float(t["anticipated_rrr"]))
    elif "anticipated_smd" in t:
        anticipated = AnticipatedEffect.standardised(float(t["anticipated_smd"]))
    else:
        anticipated = AnticipatedEffect.mean_difference(float(t["anticipated_md"]), float(t["sd"]))
    try:
        result = trial_sequential_analysis(
            r.effects.yi, r.effects.vi, [_year(y) if _year(y) != float("inf") else None for y in r.effects.years],
            anticipated, r.effects.measure, method=r.spec.pool_options.method,
            information=t.get("information", "inverse-variance"), alpha=float(t.get("alpha", 0.05)),
            power=float(t.get("power", 0.90)), ci=r.spec.pool_options.ci, z_curve=t.get("z_curve", "primary"))
    except MetaError as error:
        return None, f"not computed: {error}"
    return result, anticipated.describe()


def _low_risk_of_bias(r: AnalysisRun) -> list[int]:
    """Positions of the studies judged at low risk of bias, when they are at least two and not all."""
    if "risk_of_bias" not in r.rows.columns:
        return []
    judged = dict(zip(r.rows.index, r.rows["risk_of_bias"]))
    low = [i for i, row in enumerate(r.effects.rows) if judged.get(row) == "low"]
    return low if 2 <= len(low) < r.effects.k else []


def _year(value) -> float:
    try:
        return float(value) if value == value and value is not None else float("inf")
    except (TypeError, ValueError):
        return float("inf")


def _subgroup_test(results: list[PoolResult]):
    """Test for subgroup differences (Borenstein et al. 2009, ch. 19; RevMan): Q between the
    subgroup estimates with inverse-variance weights of their standard errors, on G - 1 df."""
    est = np.array([r.estimate for r in results])
    w = 1.0 / np.array([r.se for r in results]) ** 2
    mean = (w * est).sum() / w.sum()
    q = float((w * (est - mean) ** 2).sum())
    df = len(results) - 1
    return SubgroupTest(q, df, float(chi2_sf(q, df)))


# --- publishing ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _renderers(count: int) -> Iterator[ProcessPoolExecutor | None]:
    """Up to two forked processes for the plots of ``count`` analyses (matplotlib is the slow part),
    started at once so that they load matplotlib while the caller pools; None for fewer than two."""
    if count < 2:
        yield None
        return
    workers = min(2, os.cpu_count() or 1)
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_load_plotting) as pool:
        pool.submit(int)  # start the workers now (a fork pool starts all of them on the first task)
        yield pool


def _load_plotting() -> None:
    from meta.publish.plots import warm_up

    warm_up()


def _render(r: AnalysisRun) -> dict[Path, bytes]:
    """Forest and cumulative plots of one analysis as {path: bytes} (PNG and SVG)."""
    from meta.publish.plots import (
        ForestData,
        Subgroup,
        cumulative_plot,
        figure_bytes,
        forest_plot,
        funnel_plot,
    )

    folder = OUTPUT / r.spec.name
    data = ForestData(title=r.spec.title, result=r.result, favours=r.spec.favours,
                      subgroups=tuple(Subgroup(level, res) for level, res in r.subgroups),
                      subgroup_of=tuple(r.subgroup_of), subgroup_test=r.subgroup_test)
    steps = [(f"{label} ({_year_text(r.effects.years[r.effects.labels.index(label)])})", res)
             for label, res in r.cumulative]
    files = {}
    if r.tsa is not None:
        from meta.publish.tsa_plot import tsa_plot

        files.update({folder / f"sequential.{fmt}": content for fmt, content in
                      figure_bytes(tsa_plot(r.tsa, f"{r.spec.title}: trial sequential analysis"),
                                   formats=("png",)).items()})
    for stem, figure, tight in (
            ("forest", forest_plot(data), False),
            ("cumulative", cumulative_plot(f"{r.spec.title}: cumulative by publication year", steps), True),
            ("funnel", funnel_plot(f"{r.spec.title}: funnel plot", r.result, *_filled(r)), False)):
        for fmt, content in figure_bytes(figure, tight, PLOTS[stem]).items():
            files[folder / f"{stem}.{fmt}"] = content
    return files


def _filled(r: AnalysisRun) -> tuple[tuple, tuple]:
    tf = r.bias.trimfill if r.bias is not None else None
    return (tf.filled_yi, tf.filled_vi) if tf is not None else ((), ())


def _year_text(value) -> str:
    y = _year(value)
    return "year n/a" if y == float("inf") else f"{int(y)}"


def _record(r: AnalysisRun, studies: dict) -> dict:
    """Everything the summary table and the site need about one analysis (kept in analysis.json)."""
    res = r.result
    weights = dict(zip(res.labels, res.weights))
    rows = r.rows.loc[list(r.effects.rows)]
    study_list = []
    z = norm_isf((1 - res.provenance.level / 100) / 2)
    for (number, row), label, yi, vi in zip(rows.iterrows(), r.effects.labels, r.effects.yi, r.effects.vi):
        publication = studies.get(row.get("study_id"), {})
        study_list.append({
            "study": label, "year": _year_text(row.get("year")), "row": int(number),
            "cohort": _text(row.get("cohort")), "estimate": res.back(float(yi)),
            "ci_lower": res.back(float(yi - z * vi**0.5)), "ci_upper": res.back(float(yi + z * vi**0.5)),
            "weight": round(weights[label], 6), "study_id": _text(row.get("study_id")),
            "doi": publication.get("doi", ""), "pmid": publication.get("pmid", ""),
            "source_url": _text(row.get("source_url")), "source_location": _text(row.get("source_location")),
            "design": _text(row.get("design")), "risk_of_bias": _text(row.get("risk_of_bias")),
            "indirectness": _text(row.get("indirectness")),
        })
    participants, events = _totals(rows, r.spec.effect_options.measure)
    spec = r.spec
    fixed = r.fixed
    record = {
        "analysis": spec.name, "input_hash": r.input_hash,
        "spec_hash": hashlib.sha256(spec.path.read_bytes()).hexdigest(), "title": spec.title, "outcome": spec.outcome,
        "population": spec.population, "comparison": spec.comparison, "rationale": spec.rationale,
        "sheet": str(spec.sheet.name), "measure": res.measure, "baseline_risk": spec.baseline_risk,
        "baseline_risk_source": spec.baseline_risk_source, "method": res.method, "ci_method": res.ci_method,
        "result": _rounded(res.to_dict()), "studies": study_list, "participants": participants, "events": events,
        "subgroup": spec.subgroup or "",
        "subgroups": [{"level": level, "k": s.k, "estimate": s.back(s.estimate), "ci_lower": s.back(s.ci_lower),
                       "ci_upper": s.back(s.ci_upper), "i2": s.i2} for level, s in r.subgroups],
        "subgroup_test": None if r.subgroup_test is None else
        {"q": r.subgroup_test.q, "df": r.subgroup_test.df, "p": r.subgroup_test.p},
        "fixed_effect": {"estimate": fixed.back(fixed.estimate), "ci_lower": fixed.back(fixed.ci_lower),
                         "ci_upper": fixed.back(fixed.ci_upper)},
        "bias": _rounded(r.bias.to_dict()) if r.bias is not None else None,
        "influence": [_rounded(row.to_dict()) for row in r.influence],
        "metareg": _rounded(r.metareg.to_dict()) if r.metareg is not None else None,
        "metareg_note": r.metareg_note,
        "low_risk_of_bias": None if r.low_risk is None else {
            "k": r.low_risk.k, "estimate": r.low_risk.back(r.low_risk.estimate),
            "ci_lower": r.low_risk.back(r.low_risk.ci_lower), "ci_upper": r.low_risk.back(r.low_risk.ci_upper)},
    }
    record["tsa"] = _rounded(r.tsa.to_dict()) if r.tsa is not None else None
    record["tsa_note"] = r.tsa_note
    record["certainty"] = rate(record).to_dict()
    return record


def _rounded(data):
    """Floats rounded to 12 significant digits so the JSON is identical across machines."""
    if isinstance(data, float):
        return float(f"{data:.12g}")
    if isinstance(data, dict):
        return {k: _rounded(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_rounded(v) for v in data]
    return data


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def _totals(rows: pd.DataFrame, measure: str) -> tuple[tuple, tuple]:
    """(participants, studies counted) and (events, studies counted); no events for SMD, MD or GEN analyses,
    where a binary row's cut-off cases are not events of the outcome."""
    def total(single: str, per_arm):
        values = []
        for _, row in rows.iterrows():
            if single in row.index and pd.notna(row[single]):
                values.append(float(row[single]))
            elif pd.notna(both := per_arm(row, "treat") + per_arm(row, "ctrl")):
                values.append(both)
        return (int(sum(values)), len(values)) if values else (None, 0)

    def events(row, arm):
        value = row.get(f"events_{arm}")
        return float(value) if pd.notna(value) else float("nan")

    no_events = measure in ("SMD", "MD", "GEN")
    return total("n_total", arm_size), (None, 0) if no_events else total("events_total", events)


def _remove_stale_outputs(root: Path, names: set[str], written: list[str]) -> None:
    folder = root / OUTPUT
    if not folder.exists():
        return
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name not in names:
            shutil.rmtree(child)
            written.append(f"removed {child.relative_to(root)}")


def version_of(record: dict, date: str) -> Version:
    res = record["result"]
    exp = record["measure"].split()[0] in ("RR", "OR", "HR")  # 'RR at 8.75 mMET-h/week' for a curve

    def value(name, suffix="_exp" if exp else ""):
        v = res.get(f"{name}{suffix}")
        return stored(float("nan") if v is None else v)

    return Version(date, record["analysis"], record["input_hash"], record["measure"], int(res["k"]),
                   value("estimate"), value("ci_lower"), value("ci_upper"), value("pi_lower"), value("pi_upper"),
                   value("tau2", ""), value("i2", ""), tuple(s["study"] for s in record["studies"]),
                   record.get("spec_hash", ""))


def _publish_living(root: Path, records: list[dict], date: str, write) -> list[str]:
    history_path = root / "analyses" / "history.csv"
    versions = read_history(history_path.read_text() if history_path.exists() else "")
    current = [version_of(rec, date) for rec in records]
    old_latest = latest(versions)
    versions, added = update_history(versions, current)
    titles = {rec["analysis"]: rec["title"] for rec in records}
    if added:  # CHANGES.md first: history.csv says a version is published, so a crash between
        changes_path = root / "analyses" / "CHANGES.md"  # the two writes re-adds its line next run
        existing = changes_path.read_text() if changes_path.exists() else ""
        lines = [describe_change(old_latest.get(v.analysis), v, titles[v.analysis]) for v in added]
        write(Path("analyses") / "CHANGES.md", changes_text(existing, date, lines))
        write(Path("analyses") / "history.csv", history_text(versions))
    rows, footnotes = summary_rows(records, versions)
    newest = max((v.version_date for v in versions), default=date)
    write(OUTPUT / "summary.md", summary_markdown(rows, newest, footnotes, load_review(root)))
    write(OUTPUT / "summary.csv", summary_csv(rows))
    from meta.publish.living import summary_html_table

    write(OUTPUT / "summary.html", "<!doctype html>\n<meta charset=\"utf-8\">\n<title>Living summary</title>\n"
          + summary_html_table(rows, footnotes=footnotes))
    return [v.analysis for v in added]

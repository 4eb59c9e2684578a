"""``meta.Review``: a review folder (``extraction/``, ``analyses/``) driven from Python as the CLI drives it."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from meta.api.analyses import percent
from meta.api.results import PoolResult
from meta.errors import OptionError, SpecError
from meta.sheets.analyses import bias_frame, metareg_frame, pool_frame
from meta.sheets.evidence import Report, validate_project
from meta.sheets.dose_specs import load_dose_spec, load_dose_specs
from meta.sheets.doses import DoseOptions
from meta.sheets.selection import Selection, sheet_selection, spec_selection
from meta.sheets.specs import Spec, has_table, load_specs
from meta.stats.bias import BiasReport
from meta.stats.metareg import MetaRegression
from meta.stats.options import EffectOptions, PoolOptions

EFFECT_OVERRIDES = {"measure": "measure", "zero_cells": "zero_cells", "md_variance": "md_variance"}
POOL_OVERRIDES = {"method": "method", "ci": "ci", "level": "level", "i2": "i2_definition"}


@dataclass(frozen=True)
class DiffReport:
    """What changed in the pooled results: one line per analysis (``meta diff``)."""

    revision: str | None
    lines: tuple[str, ...]

    def to_dict(self) -> dict:
        """The ``meta diff --json`` object."""
        return {"revision": self.revision, "changes": list(self.lines)}


class Review:
    """A review folder: ``Review(".").validate()``, ``.run()``, ``.diff("HEAD~1")``, and one analysis of
    it by its spec name: ``.pool("depression")``, ``.bias(...)``, ``.metareg(...)``.

    An analysis by spec runs exactly what ``meta run`` runs (the spec's sheet, filter, measure,
    method, interval and moderators); keyword arguments (``method=``, ``ci=``, ``level=``, ``where=``,
    ...) change one setting for this call only.
    """

    def __init__(self, root: str | Path = "."):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Review({str(self.root)!r})"

    @property
    def specs(self) -> list[Spec]:
        """Every analysis spec (``analyses/*.toml``), in name order."""
        return load_specs(self.root)

    def validate(self) -> Report:
        """Every problem of every sheet, studies.csv and spec (``meta validate``); ``.ok``, ``.to_dict()``."""
        return validate_project(self.root)

    def run(self, *, force: bool = False, date: str | None = None,
            progress: Callable[[str, str], None] = lambda name, status: None):
        """Run every analysis whose inputs changed (all with ``force``) and publish (``meta run``)."""
        from meta.publish.run import run

        date = date or datetime.date.today().isoformat()
        try:
            datetime.date.fromisoformat(date)
        except ValueError:
            raise OptionError(f"date must be YYYY-MM-DD; got {date!r}") from None
        return run(self.root, date, progress, force=force)

    def diff(self, revision: str | None = None) -> DiffReport:
        """What changed since git ``revision`` (or each analysis's previous version)."""
        from meta.publish.diff import diff_lines

        return DiffReport(revision, tuple(diff_lines(self.root, revision)))

    def pool(self, spec: str, **overrides) -> PoolResult:
        """The pooled result of ``analyses/<spec>.toml``."""
        chosen, effect_options, pool_options, allow_mixed = self._analysis(spec, overrides)
        return PoolResult.from_core(pool_frame(chosen.frame, chosen.name, effect_options, pool_options,
                                               allow_mixed))

    def bias(self, spec: str, **overrides) -> BiasReport:
        """Small-study tests, trim-and-fill and leave-one-out of the spec's analysis."""
        chosen, effect_options, pool_options, allow_mixed = self._analysis(spec, overrides)
        return bias_frame(chosen.frame, chosen.name, effect_options, pool_options, allow_mixed)

    def metareg(self, spec: str, *, mods=None, factors=(), **overrides) -> MetaRegression:
        """Meta-regression of the spec's analysis on its ``moderators`` (or on ``mods``)."""
        chosen, effect_options, pool_options, allow_mixed = self._analysis(spec, overrides)
        moderators = tuple([mods] if isinstance(mods, str) else mods or chosen.spec.moderators)
        if not moderators:
            raise OptionError(f"analysis {spec} has no moderators in its spec; name them with mods=[...]")
        return metareg_frame(chosen.frame, chosen.name, effect_options, moderators, tuple(factors),
                             pool_options.method, pool_options.ci, pool_options.level, allow_mixed)

    def doseresponse(self, spec: str, *, where=None, **overrides):
        """The dose-response curve of ``analyses/<spec>.toml`` (a spec with a ``[doseresponse]`` table);
        keyword arguments change one setting of its ``[doseresponse]`` table for this call."""
        from meta.api.doseresponse import DoseResponseResult, _knots
        from meta.sheets.doses import fit_dose_frame

        path = self.root / "analyses" / f"{spec}.toml"
        if not (path.is_file() and has_table(path, "doseresponse")):
            known = sorted(s.name for s in load_dose_specs(self.root))
            raise SpecError(f"no dose-response spec analyses/{spec}.toml; known: {', '.join(known) or 'none'}")
        chosen = load_dose_spec(path, self.root)
        unknown = sorted(set(overrides) - set(DoseOptions.__dataclass_fields__))
        if unknown:
            raise OptionError(f"unknown option(s) {', '.join(unknown)}")
        if "knots" in overrides:
            overrides["knots"] = _knots(overrides["knots"])
        options = replace(chosen.options, **{k: v for k, v in overrides.items() if v is not None})
        selection = sheet_selection(chosen.sheet, dict(chosen.filters) | dict(where or {}), metafor_names=False)
        return DoseResponseResult(fit_dose_frame(selection.frame, selection.name, options), chosen.title)

    def _analysis(self, spec: str, overrides: dict) -> tuple[Selection, EffectOptions, PoolOptions, bool]:
        allowed = set(EFFECT_OVERRIDES) | set(POOL_OVERRIDES) | {"where", "allow_mixed"}
        unknown = sorted(set(overrides) - allowed)
        if unknown:
            raise OptionError(f"unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        chosen = spec_selection(self.root, spec, overrides.get("where"))
        effect_options = replace(chosen.spec.effect_options, **{
            field: overrides[key] for key, field in EFFECT_OVERRIDES.items() if overrides.get(key) is not None})
        pool_changes = {field: overrides[key] for key, field in POOL_OVERRIDES.items() if overrides.get(key) is not None}
        if "level" in pool_changes:
            pool_changes["level"] = percent(pool_changes["level"])
        pool_options = replace(chosen.spec.pool_options, **pool_changes)
        return chosen, effect_options, pool_options, bool(overrides.get("allow_mixed", False))

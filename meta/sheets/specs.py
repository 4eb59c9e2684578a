"""Analysis specs: ``analyses/<name>.toml`` says what to pool and how.

A spec names one sheet (a path inside the project), filters on its columns, the measure, the
tau^2 estimator and interval method, an optional subgroup column, and the words the summary table
shows. Unknown keys, values outside the vocabularies and paths that leave the project are refused
with a message naming the spec and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import tomllib

from meta.errors import OptionError, SpecError
from meta.sheets.load import rows_matching
from meta.stats.options import EffectOptions, PoolOptions

SPEC_KEYS = {"title", "outcome", "population", "comparison", "sheet", "measure", "method", "ci",
             "md_variance", "zero_cells", "level", "subgroup", "rationale", "filter", "favours", "tsa",
             "baseline_risk", "baseline_risk_source", "moderators"}
TSA_KEYS = {"anticipated_rrr", "anticipated_smd", "anticipated_md", "sd", "alpha", "power", "information",
            "z_curve"}
TSA_TEXT_KEYS = {"information", "z_curve"}
REQUIRED_KEYS = ("title", "outcome", "population", "comparison", "sheet", "measure", "rationale")


@dataclass(frozen=True)
class Spec:
    """One analysis: which rows of which sheet, pooled how, and described how."""

    name: str
    path: Path
    title: str
    outcome: str
    population: str
    comparison: str
    sheet: Path
    rationale: str
    effect_options: EffectOptions
    pool_options: PoolOptions
    filters: dict = field(default_factory=dict)
    subgroup: str | None = None
    favours: tuple[str, str] = ("treatment", "control")
    tsa: dict | None = None
    baseline_risk: float | None = None
    moderators: tuple[str, ...] = ()
    baseline_risk_source: str = ""

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of the sheet the filters keep (index = sheet row numbers)."""
        return frame[rows_matching(frame, self.filters)]


def load_spec(path: Path, root: Path) -> Spec:
    """Read and check one spec; raise SpecError naming the file and the key on any problem."""
    where = _relative(path, root)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SpecError(f"{where}: not valid TOML ({err})") from None
    unknown = sorted(set(data) - SPEC_KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(SPEC_KEYS))}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise SpecError(f"{where}: missing key(s) {', '.join(missing)}")
    for key in ("title", "outcome", "population", "comparison", "sheet", "measure", "rationale", "method", "ci",
                "md_variance", "zero_cells", "subgroup"):
        if key in data and not isinstance(data[key], str):
            raise SpecError(f"{where}: {key} must be text in quotes; got {data[key]!r}")
    if "level" in data and (isinstance(data["level"], bool) or not isinstance(data["level"], (int, float))):
        raise SpecError(f"{where}: level must be a number (a percentage, e.g. 95); got {data['level']!r}")
    sheet = inside_project(data["sheet"], root, where)
    filters = data.get("filter", {})
    if not isinstance(filters, dict):
        raise SpecError(f"{where}: [filter] must be a table of column = value(s)")
    try:
        effect_options = EffectOptions(data["measure"], md_variance=data.get("md_variance", "unequal"),
                                       zero_cells=data.get("zero_cells", "keep"))
        pool_options = PoolOptions(method=data.get("method", "REML"), ci=data.get("ci", "knha"),
                                   level=float(data.get("level", 95)))
    except OptionError as err:
        raise SpecError(f"{where}: {err}") from None
    favours = data.get("favours", ["treatment", "control"])
    if not (isinstance(favours, list) and len(favours) == 2 and all(isinstance(f, str) for f in favours)):
        raise SpecError(f"{where}: favours must be two labels, left and right of the null line")
    moderators = data.get("moderators", [])
    if not (isinstance(moderators, list) and all(isinstance(m, str) for m in moderators)):
        raise SpecError(f"{where}: moderators must be a list of column names, e.g. [\"dose_met_h_week\"]")
    baseline = data.get("baseline_risk")
    if baseline is not None:
        if isinstance(baseline, bool) or not isinstance(baseline, (int, float)) or not 0 < baseline < 1:
            raise SpecError(f"{where}: baseline_risk must be a proportion between 0 and 1; got {baseline!r}")
        if not isinstance(data.get("baseline_risk_source"), str) or not data["baseline_risk_source"].strip():
            raise SpecError(f"{where}: baseline_risk needs baseline_risk_source (where the number was read)")
    tsa = data.get("tsa")
    if tsa is not None:
        unknown = sorted(set(tsa) - TSA_KEYS) if isinstance(tsa, dict) else ["(not a table)"]
        effects = [k for k in ("anticipated_rrr", "anticipated_smd", "anticipated_md") if k in tsa] if isinstance(tsa, dict) else []
        wrong = [k for k, v in tsa.items() if k not in TSA_TEXT_KEYS and (isinstance(v, bool) or not isinstance(v, (int, float)))] \
            if isinstance(tsa, dict) else []
        if wrong:
            raise SpecError(f"{where}: [tsa] {', '.join(wrong)} must be numbers")
        if unknown or len(effects) != 1:
            raise SpecError(f"{where}: [tsa] takes one of anticipated_rrr, anticipated_smd, anticipated_md (with sd) "
                            f"and optionally alpha, power, information, z_curve; got {', '.join(sorted(tsa)) if isinstance(tsa, dict) else tsa}")
    return Spec(name=Path(path).stem, favours=tuple(favours), tsa=tsa, baseline_risk=baseline,
                moderators=tuple(moderators),
                baseline_risk_source=data.get("baseline_risk_source", ""), path=Path(path), title=data["title"], outcome=data["outcome"],
                population=data["population"], comparison=data["comparison"], sheet=sheet,
                rationale=data["rationale"], effect_options=effect_options, pool_options=pool_options,
                filters=filters, subgroup=data.get("subgroup"))


def inside_project(relative: str, root: Path, where: str) -> Path:
    """``root / relative`` if it stays inside the project; refuse absolute paths and '..' escapes."""
    candidate = (root / relative).resolve()
    if Path(relative).is_absolute() or not candidate.is_relative_to(root.resolve()):
        raise SpecError(f"{where}: sheet '{relative}' is outside the project; name a sheet under extraction/")
    return candidate


def load_specs(root: Path) -> list[Spec]:
    """Every pooled-analysis spec in ``root/analyses`` in name order (dose-response specs, those with a
    ``[doseresponse]`` table, are ``meta.sheets.dose_specs``')."""
    return [load_spec(path, root) for path in sorted((Path(root) / "analyses").glob("*.toml"))
            if not has_table(path, "doseresponse")]


def has_table(path: Path, table: str) -> bool:
    try:
        return table in tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)

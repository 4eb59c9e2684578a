"""Certainty of the evidence per analysis, GRADE-style, computed from the data with reasons.

Rules (Guyatt et al. 2011, J Clin Epidemiol 64:383 and the GRADE series that follows; thresholds
as commonly operationalised, e.g. Cochrane Handbook ch. 14):

- start: high when every study is randomised, low otherwise (observational);
- risk of bias (sheet column ``risk_of_bias``): -1 when studies judged ``high`` carry more than
  half of the weight; rows not judged are said to be so, not guessed;
- inconsistency: -1 when I^2 >= 50% or the prediction interval crosses the null while the CI
  does not;
- imprecision: -1 when the CI crosses the null; -1 more when the optimal information size is not
  met either (fewer than 400 participants for continuous outcomes, fewer than 300 events for
  ratios; Guyatt et al. 2011, J Clin Epidemiol 64:1283);
- publication bias: -1 when Egger's test gives p < 0.10 with k >= 10;
- indirectness (sheet column ``indirectness``): -1 when studies judged ``serious`` carry more than
  half of the weight;
- large effect: +1 for observational evidence with no downgrade and a ratio whose CI lies wholly
  below 0.5 or above 2.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = {4: "high", 3: "moderate", 2: "low", 1: "very low"}
SYMBOLS = {4: "\u2295\u2295\u2295\u2295", 3: "\u2295\u2295\u2295\u25ef", 2: "\u2295\u2295\u25ef\u25ef",
           1: "\u2295\u25ef\u25ef\u25ef"}
OIS_PARTICIPANTS = 400
OIS_EVENTS = 300


@dataclass(frozen=True)
class Certainty:
    """The rating and every reason for it (downgrades, upgrades and notes)."""

    start: str
    level: int
    reasons: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{LEVELS[self.level]} {SYMBOLS[self.level]}"

    def to_dict(self) -> dict:
        return {"start": self.start, "level": LEVELS[self.level], "label": self.label,
                "reasons": list(self.reasons), "notes": list(self.notes)}


def rate(record: dict) -> Certainty:
    """Rate one published analysis (the dict ``meta run`` keeps in analysis.json)."""
    res = record["result"]
    studies = record["studies"]
    ratio = record["measure"] in ("RR", "OR", "HR")
    null = 1.0 if ratio else 0.0
    randomised = all(s.get("design") == "rct" for s in studies)
    level = 4 if randomised else 2
    start = "high (randomised trials)" if randomised else "low (observational studies)"
    reasons: list[str] = []
    notes: list[str] = []

    weights = {s["study"]: s["weight"] for s in studies}
    high_rob = sum(weights[s["study"]] for s in studies if s.get("risk_of_bias") == "high")
    if high_rob > 50:
        reasons.append(f"risk of bias: studies at high risk carry {high_rob:.0f}% of the weight")
    if not any(s.get("risk_of_bias") for s in studies):
        notes.append("risk of bias not judged in the sheets (not downgraded)")

    lo, hi = _natural(res, "ci_lower", ratio), _natural(res, "ci_upper", ratio)
    pi_lo, pi_hi = _natural(res, "pi_lower", ratio), _natural(res, "pi_upper", ratio)
    ci_crosses = lo <= null <= hi
    if res["k"] > 1 and (res["i2"] >= 50 or (not ci_crosses and pi_lo <= null <= pi_hi)):
        reasons.append(f"inconsistency: I\u00b2 = {res['i2']:.0f}%"
                       + ("; prediction interval crosses the null" if pi_lo <= null <= pi_hi and not ci_crosses else ""))

    if ci_crosses:
        reasons.append("imprecision: the confidence interval includes no effect")
        ois = _ois_shortfall(record, ratio)
        if ois:
            reasons.append(f"imprecision: {ois}")

    egger_p = (record.get("bias") or {}).get("egger_p")
    if res["k"] >= 10 and egger_p is not None and egger_p < 0.10:
        reasons.append(f"publication bias: Egger's test p = {egger_p:.3f} (k = {res['k']})")
    elif res["k"] < 10:
        notes.append(f"publication bias not testable (k = {res['k']} < 10)")

    indirect = sum(weights[s["study"]] for s in studies if s.get("indirectness") == "serious")
    if indirect > 50:
        reasons.append(f"indirectness: studies judged indirect carry {indirect:.0f}% of the weight")

    level = max(1, level - len(reasons))
    if not randomised and not reasons and ratio and (hi < 0.5 or lo > 2):
        level = 3
        notes.append("upgraded for a large effect (CI wholly beyond a ratio of 2)")
    return Certainty(start, level, tuple(reasons), tuple(notes))


def _natural(res: dict, name: str, ratio: bool) -> float:
    value = res.get(f"{name}_exp" if ratio else name)
    return float("nan") if value is None else float(value)


def _ois_shortfall(record: dict, ratio: bool) -> str:
    participants, events = record["participants"], record["events"]
    if ratio:
        if events[0] is not None and events[0] < OIS_EVENTS:
            return f"{events[0]} events, below the optimal information size of {OIS_EVENTS}"
        return ""
    if participants[0] is not None and participants[0] < OIS_PARTICIPANTS:
        return f"{participants[0]} participants, below the optimal information size of {OIS_PARTICIPANTS}"
    return ""

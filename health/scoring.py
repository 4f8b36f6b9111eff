"""Health scoring as plain functions over plain data: no database, no Django.

A scorecard version is a list of measures. Each measure maps one raw value
(a metric such as `logins_30d`, or an account field) to 0-100 points; the
score is the weighted mean of the points. The breakdown keeps every input
and intermediate number, so a score can be explained, compared with an
older one and replayed later with other mappings.

A measure, as stored in ScorecardVersion.measures:

    {"source": "logins_30d", "label": "Logins in the last 30 days", "weight": 2,
     "mapping": {"type": "thresholds", "bad": 0, "good": 20, "direction": "higher_is_better"},
     "missing": "skip"}

    mapping of type "bands": {"type": "bands", "bands": [[5, 0], [20, 60], [null, 100]]}
    -- a value scores the points of the first band whose upper bound it does
    not exceed; null is "no upper bound", and a value above every bound scores
    the last band's points.
"""

from dataclasses import dataclass, field

GREEN, YELLOW, RED = "green", "yellow", "red"
COLOURS = (GREEN, YELLOW, RED)

HIGHER_IS_BETTER, LOWER_IS_BETTER = "higher_is_better", "lower_is_better"
THRESHOLDS, BANDS = "thresholds", "bands"
SKIP, SCORE_AS_BAD = "skip", "score_as_bad"


@dataclass(frozen=True)
class ColourBands:
    """A score below `red_below` is red, from `green_from` up green, yellow between."""

    red_below: float = 40
    green_from: float = 70

    def colour(self, score):
        if score is None:
            return ""
        if score < self.red_below:
            return RED
        if score >= self.green_from:
            return GREEN
        return YELLOW


@dataclass
class Score:
    """`score` is None (and `colour` empty) when no measure had data to score."""

    score: float | None
    colour: str
    breakdown: list = field(default_factory=list)


def map_points(mapping, value):
    """Points (0-100) of one raw value under a measure's mapping."""
    if mapping["type"] == THRESHOLDS:
        bad, good = float(mapping["bad"]), float(mapping["good"])
        if mapping.get("direction", HIGHER_IS_BETTER) == LOWER_IS_BETTER:
            bad, good, value = -bad, -good, -value
        if value <= bad:
            return 0.0
        if value >= good:
            return 100.0
        return 100.0 * (value - bad) / (good - bad)
    bands = mapping["bands"]
    for upper, points in bands:
        if upper is None or value <= upper:
            return float(points)
    return float(bands[-1][1])


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def score_account(measures, values, bands=ColourBands()):
    """Score one account: `measures` of a scorecard version, `values` as {source: number or None}.

    A measure without a value is skipped (its weight is shared out among the
    others) or scores 0 points, as its `missing` policy says.
    """
    entries = []
    for measure in measures:
        value = _number(values.get(measure["source"]))
        skipped = value is None and measure.get("missing", SKIP) == SKIP
        if skipped:
            points = None
        elif value is None:
            points = 0.0
        else:
            points = map_points(measure["mapping"], value)
        entries.append(
            {
                "source": measure["source"],
                "label": measure.get("label") or measure["source"],
                "value": value,
                "points": None if points is None else round(points, 1),
                "weight": measure["weight"],
                "skipped": skipped,
                "contribution": 0.0,
                "_points": points,
            }
        )
    total_weight = sum(entry["weight"] for entry in entries if not entry["skipped"])
    score = None
    if total_weight > 0:
        score = 0.0
        for entry in entries:
            if not entry["skipped"]:
                contribution = entry["_points"] * entry["weight"] / total_weight
                entry["contribution"] = round(contribution, 1)
                score += contribution
        score = round(score, 1)
    for entry in entries:
        del entry["_points"]
    return Score(score=score, colour=bands.colour(score), breakdown=entries)


def breakdown_values(breakdown):
    """The raw values a breakdown was scored from: what a replay needs."""
    return {entry["source"]: entry["value"] for entry in breakdown}


def format_number(value):
    if value is None:
        return "no data"
    value = round(float(value), 1)
    return str(int(value)) if value == int(value) else str(value)


def _signed(points):
    text = format_number(abs(points))
    return f"+{text}" if points >= 0 else f"-{text}"


def _points_word(points):
    return "point" if abs(round(points, 1)) == 1 else "points"


def measure_changes(old_breakdown, new_breakdown, *, min_points=0.1):
    """Per measure (matched by source), the old and new value and points and the effect on the score.

    Biggest effect first; each change carries a plain-words `text`, e.g.
    "Logins in the last 30 days fell from 42 to 9: -12 points". A measure
    whose value changed without moving the score is still listed; one where
    nothing changed is not.
    """
    old = {entry["source"]: entry for entry in old_breakdown or []}
    new = {entry["source"]: entry for entry in new_breakdown or []}
    changes = []
    for source in list(new) + [s for s in old if s not in new]:
        before, after = old.get(source), new.get(source)
        label = (after or before)["label"]
        old_value = before["value"] if before else None
        new_value = after["value"] if after else None
        delta = round((after["contribution"] if after else 0.0) - (before["contribution"] if before else 0.0), 1)
        value_changed = (old_value is None) != (new_value is None) or (
            old_value is not None and round(old_value, 1) != round(new_value, 1)
        )
        if before and after and not value_changed and abs(delta) < min_points:
            continue
        effect = f"{_signed(delta)} {_points_word(delta)}"
        if before is None:
            text = f"{label} was added to the scorecard (value {format_number(new_value)}): {effect}"
        elif after is None:
            text = f"{label} was removed from the scorecard: {effect}"
        elif not value_changed:
            # Same value, different effect: the mapping or weights changed, or other measures gained or lost data.
            text = f"{label} stayed at {format_number(new_value)} but counts differently now: {effect}"
        elif new_value is None:
            text = f"{label} has no data any more (was {format_number(old_value)}): {effect}"
        elif old_value is None:
            text = f"{label} now has data ({format_number(new_value)}): {effect}"
        else:
            verb = "rose" if new_value > old_value else "fell"
            text = f"{label} {verb} from {format_number(old_value)} to {format_number(new_value)}: {effect}"
        changes.append(
            {
                "source": source,
                "label": label,
                "old_value": old_value,
                "new_value": new_value,
                "old_points": before["points"] if before else None,
                "new_points": after["points"] if after else None,
                "points_change": delta,
                "text": text,
            }
        )
    changes.sort(key=lambda change: -abs(change["points_change"]))
    return changes


def explain_change(old_breakdown, new_breakdown):
    """The plain-words lines of `measure_changes`, biggest effect first."""
    return [change["text"] for change in measure_changes(old_breakdown, new_breakdown)]

"""Validation of a scorecard version's measures, as plain functions.

`clean_measures` returns the measures in their stored shape (defaults filled
in, numbers as floats) and the errors keyed by path, e.g.
`("measures", 2, "mapping", "bad")`, which the API turns into field paths
such as `measures[2].mapping.bad`.
"""

import re

from .scoring import BANDS, HIGHER_IS_BETTER, LOWER_IS_BETTER, SCORE_AS_BAD, SKIP, THRESHOLDS

MAX_MEASURES = 30
MAX_WEIGHT = 1000
# Account fields a measure may read besides metrics; attributes are read when numeric.
ACCOUNT_FIELD_SOURCES = {"account.mrr": "Monthly recurring revenue"}
ATTRIBUTE_SOURCE = re.compile(r"^account\.attributes\.([A-Za-z_][A-Za-z0-9_]{0,99})$")


def source_label(source, known_sources):
    """A readable default label: the metric's or field's own, else the attribute name."""
    if source in known_sources:
        return known_sources[source]
    match = ATTRIBUTE_SOURCE.match(source)
    return match.group(1).replace("_", " ").capitalize() if match else source


def is_known_source(source, known_sources):
    return source in known_sources or bool(ATTRIBUTE_SOURCE.match(source))


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _clean_thresholds(mapping, path, errors):
    clean = {"type": THRESHOLDS, "direction": mapping.get("direction", HIGHER_IS_BETTER)}
    if clean["direction"] not in (HIGHER_IS_BETTER, LOWER_IS_BETTER):
        errors[(*path, "direction")] = f"Use {HIGHER_IS_BETTER} or {LOWER_IS_BETTER}."
    for name in ("bad", "good"):
        if not _is_number(mapping.get(name)):
            errors[(*path, name)] = "A number is required."
        else:
            clean[name] = float(mapping[name])
    if "bad" in clean and "good" in clean and clean["direction"] in (HIGHER_IS_BETTER, LOWER_IS_BETTER):
        if clean["direction"] == HIGHER_IS_BETTER and not clean["bad"] < clean["good"]:
            errors[(*path, "good")] = "When higher is better, good must be greater than bad."
        if clean["direction"] == LOWER_IS_BETTER and not clean["good"] < clean["bad"]:
            errors[(*path, "good")] = "When lower is better, good must be less than bad."
    return clean


def _clean_bands(mapping, path, errors):
    bands = mapping.get("bands")
    if not isinstance(bands, list) or not bands:
        errors[(*path, "bands")] = "A list of [upper_bound, points] pairs is required."
        return {"type": BANDS, "bands": []}
    clean = []
    previous = None
    for index, band in enumerate(bands):
        band_path = (*path, "bands", index)
        if not isinstance(band, list) or len(band) != 2:
            errors[band_path] = "Each band is a pair [upper_bound, points]."
            continue
        upper, points = band
        if not (_is_number(points) and 0 <= points <= 100):
            errors[band_path] = "Points must be a number from 0 to 100."
            continue
        if upper is None:
            if index != len(bands) - 1:
                errors[band_path] = "Only the last band may have no upper bound (null)."
                continue
        elif not _is_number(upper):
            errors[band_path] = "The upper bound must be a number, or null for the last band."
            continue
        elif previous is not None and not upper > previous:
            errors[band_path] = "Upper bounds must be in ascending order."
            continue
        else:
            previous = upper
        clean.append([None if upper is None else float(upper), float(points)])
    return {"type": BANDS, "bands": clean}


def _clean_measure(measure, path, known_sources, errors):
    if not isinstance(measure, dict):
        errors[path] = "Each measure is an object with source, weight and mapping."
        return None
    source = measure.get("source")
    if not isinstance(source, str) or not source:
        errors[(*path, "source")] = "A source (a metric key or account field) is required."
        source = ""
    elif not is_known_source(source, known_sources):
        errors[(*path, "source")] = f"Unknown metric or field {source!r}."
    label = measure.get("label") or source_label(source, known_sources)
    if not isinstance(label, str) or len(label) > 200:
        errors[(*path, "label")] = "The label is text of at most 200 characters."
    weight = measure.get("weight", 1)
    if not _is_number(weight) or not 0 < weight <= MAX_WEIGHT:
        errors[(*path, "weight")] = f"The weight must be a number greater than 0 and at most {MAX_WEIGHT}."
    missing = measure.get("missing", SKIP)
    if missing not in (SKIP, SCORE_AS_BAD):
        errors[(*path, "missing")] = f"Use {SKIP} or {SCORE_AS_BAD}."
    mapping = measure.get("mapping")
    if not isinstance(mapping, dict) or mapping.get("type") not in (THRESHOLDS, BANDS):
        errors[(*path, "mapping", "type")] = f"A mapping of type {THRESHOLDS} or {BANDS} is required."
        mapping = None
    elif mapping["type"] == THRESHOLDS:
        mapping = _clean_thresholds(mapping, (*path, "mapping"), errors)
    else:
        mapping = _clean_bands(mapping, (*path, "mapping"), errors)
    return {"source": source, "label": label, "weight": weight, "missing": missing, "mapping": mapping}


def clean_measures(measures, known_sources):
    """`(clean_measures, errors)`; `known_sources` maps each metric key or field to its label."""
    errors = {}
    if not isinstance(measures, list) or not measures:
        return [], {("measures",): "At least one measure is required."}
    if len(measures) > MAX_MEASURES:
        return [], {("measures",): f"At most {MAX_MEASURES} measures."}
    clean = []
    seen = set()
    for index, measure in enumerate(measures):
        path = ("measures", index)
        cleaned = _clean_measure(measure, path, known_sources, errors)
        if cleaned is None:
            continue
        if cleaned["source"] in seen:
            errors[(*path, "source")] = f"{cleaned['source']!r} is measured twice; each source once."
        seen.add(cleaned["source"])
        clean.append(cleaned)
    return clean, errors


def errors_as_detail(errors):
    """`{("measures", 2, "weight"): msg}` -> `{"measures": {2: {"weight": [msg]}}}` for a DRF ValidationError."""
    detail = {}
    for path, message in errors.items():
        node = detail
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node.setdefault(path[-1], []).append(message)
    return detail

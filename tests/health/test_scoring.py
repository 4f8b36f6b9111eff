"""The scoring functions are plain Python: these tests need no database."""

import pytest

from health.measures import clean_measures, errors_as_detail
from health.scoring import ColourBands, explain_change, map_points, measure_changes, score_account


def thresholds(source, bad, good, weight=1, direction="higher_is_better", missing="skip", label=None):
    return {
        "source": source, "label": label or source, "weight": weight, "missing": missing,
        "mapping": {"type": "thresholds", "bad": bad, "good": good, "direction": direction},
    }


def bands(source, pairs, weight=1, missing="skip"):
    return {"source": source, "label": source, "weight": weight, "missing": missing,
            "mapping": {"type": "bands", "bands": pairs}}


@pytest.mark.parametrize(("value", "points"), [(-5, 0), (0, 0), (5, 50), (7.5, 75), (10, 100), (50, 100)])
def test_thresholds_higher_is_better_are_linear_between_bad_and_good(value, points):
    mapping = {"type": "thresholds", "bad": 0, "good": 10, "direction": "higher_is_better"}
    assert map_points(mapping, value) == pytest.approx(points)


@pytest.mark.parametrize(("value", "points"), [(0, 100), (1, 100), (8, 50), (15, 0), (30, 0)])
def test_thresholds_lower_is_better_score_small_values_high(value, points):
    mapping = {"type": "thresholds", "bad": 15, "good": 1, "direction": "lower_is_better"}
    assert map_points(mapping, value) == pytest.approx(points)


@pytest.mark.parametrize(("value", "points"), [(0, 0), (1, 30), (2, 60), (3, 60), (6, 85), (7, 100), (500, 100)])
def test_bands_give_the_points_of_the_first_band_whose_upper_bound_is_not_exceeded(value, points):
    mapping = {"type": "bands", "bands": [[0, 0], [1, 30], [3, 60], [6, 85], [None, 100]]}
    assert map_points(mapping, value) == points


def test_a_value_above_every_finite_band_scores_the_last_band():
    assert map_points({"type": "bands", "bands": [[10, 20], [20, 70]]}, 99) == 70


def test_score_is_the_weighted_mean_of_the_points():
    measures = [thresholds("logins_30d", 0, 20, weight=3), thresholds("events_30d", 0, 100, weight=1)]
    result = score_account(measures, {"logins_30d": 20, "events_30d": 0})
    assert result.score == 75.0
    assert [entry["contribution"] for entry in result.breakdown] == [75.0, 0.0]
    assert [entry["points"] for entry in result.breakdown] == [100.0, 0.0]


def test_missing_value_with_skip_shares_its_weight_among_the_others():
    measures = [thresholds("nps_avg_90d", 0, 10, weight=2), thresholds("logins_30d", 0, 20, weight=1, missing="skip")]
    result = score_account(measures, {"nps_avg_90d": 5, "logins_30d": None})
    assert result.score == 50.0
    skipped = result.breakdown[1]
    assert skipped["skipped"] is True and skipped["points"] is None and skipped["contribution"] == 0


def test_missing_value_scored_as_bad_counts_zero_points_at_full_weight():
    measures = [thresholds("nps_avg_90d", 0, 10, weight=1), thresholds("logins_30d", 0, 20, weight=1, missing="score_as_bad")]
    result = score_account(measures, {"nps_avg_90d": 10})
    assert result.score == 50.0
    assert result.breakdown[1]["skipped"] is False and result.breakdown[1]["points"] == 0


def test_non_numeric_values_count_as_missing():
    result = score_account([thresholds("account.attributes.nps", 0, 10)], {"account.attributes.nps": "high"})
    assert result.score is None and result.colour == ""


def test_no_data_at_all_gives_no_score_and_no_colour():
    result = score_account([thresholds("logins_30d", 0, 20)], {})
    assert (result.score, result.colour) == (None, "")


@pytest.mark.parametrize(
    ("score", "colour"), [(0, "red"), (39.9, "red"), (40, "yellow"), (69.9, "yellow"), (70, "green"), (100, "green")]
)
def test_default_colour_bands(score, colour):
    assert ColourBands().colour(score) == colour


def test_tenant_colour_bands_move_the_lines():
    result = score_account([thresholds("logins_30d", 0, 100)], {"logins_30d": 55}, ColourBands(red_below=60, green_from=90))
    assert result.colour == "red"


def test_explain_change_names_the_measure_values_and_points_biggest_first():
    measures = [
        thresholds("logins_30d", 0, 50, weight=2, label="Logins in the last 30 days"),
        thresholds("events_30d", 0, 100, weight=1, label="Events in the last 30 days"),
    ]
    old = score_account(measures, {"logins_30d": 42, "events_30d": 50}).breakdown
    new = score_account(measures, {"logins_30d": 9, "events_30d": 60}).breakdown
    assert explain_change(old, new) == [
        "Logins in the last 30 days fell from 42 to 9: -44 points",
        "Events in the last 30 days rose from 50 to 60: +3.3 points",
    ]


def test_explain_change_reports_lost_data_and_new_measures():
    old = score_account([thresholds("logins_30d", 0, 10, label="Logins")], {"logins_30d": 10}).breakdown
    new = score_account(
        [thresholds("logins_30d", 0, 10, label="Logins", missing="score_as_bad"), thresholds("nps_avg_90d", 0, 10, label="NPS")],
        {"nps_avg_90d": 10},
    ).breakdown
    changes = {change["source"]: change for change in measure_changes(old, new)}
    assert changes["logins_30d"]["text"] == "Logins has no data any more (was 10): -100 points"
    assert changes["nps_avg_90d"]["text"] == "NPS was added to the scorecard (value 10): +50 points"
    assert changes["nps_avg_90d"]["points_change"] == 50


def test_explain_change_is_silent_when_nothing_changed():
    breakdown = score_account([thresholds("logins_30d", 0, 10)], {"logins_30d": 4}).breakdown
    assert explain_change(breakdown, breakdown) == []


KNOWN = {"logins_30d": "Logins in the last 30 days", "events_30d": "Events in the last 30 days"}


def test_clean_measures_fills_defaults_and_labels():
    clean, errors = clean_measures([{"source": "logins_30d", "mapping": {"type": "thresholds", "bad": 0, "good": 5}}], KNOWN)
    assert errors == {}
    assert clean == [
        {
            "source": "logins_30d", "label": "Logins in the last 30 days", "weight": 1, "missing": "skip",
            "mapping": {"type": "thresholds", "direction": "higher_is_better", "bad": 0.0, "good": 5.0},
        }
    ]


def test_clean_measures_points_at_each_bad_field():
    measures = [
        {"source": "logins_30d", "weight": 0, "mapping": {"type": "thresholds", "bad": 10, "good": 5}},
        {"source": "nope_7d", "mapping": {"type": "bands", "bands": [[10, 0], [5, 50], [None, 100]]}},
        {"source": "events_30d", "missing": "ignore", "mapping": {"type": "thresholds", "bad": 5, "good": 10,
                                                                   "direction": "lower_is_better"}},
    ]
    _, errors = clean_measures(measures, KNOWN)
    assert set(errors) == {
        ("measures", 0, "weight"),
        ("measures", 0, "mapping", "good"),
        ("measures", 1, "source"),
        ("measures", 1, "mapping", "bands", 1),
        ("measures", 2, "missing"),
        ("measures", 2, "mapping", "good"),
    }
    assert errors_as_detail(errors)["measures"][1]["mapping"]["bands"][1] == ["Upper bounds must be in ascending order."]


def test_clean_measures_accepts_numeric_account_attributes_and_refuses_duplicates():
    mapping = {"type": "thresholds", "bad": 0, "good": 10}
    _, errors = clean_measures(
        [{"source": "account.attributes.seats", "mapping": mapping}, {"source": "account.attributes.seats", "mapping": mapping}],
        KNOWN,
    )
    assert list(errors) == [("measures", 1, "source")]

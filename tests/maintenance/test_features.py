"""Features on hand-made data (values worked out by hand) and proof that nothing after t is used."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from refarch.datasets import maintenance as pdm
from refarch.maintenance.features import FeatureSpec, build_features, feature_columns
from refarch.maintenance.labels import add_labels

from .conftest import SPEC

T0 = dt.datetime(2015, 1, 1)


def hour(h: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=h)


@pytest.fixture(scope="module")
def hand_made(spark):
    """Machine 1: volt = hours since 2015-01-01 00:00, a few errors and replacements around t."""
    telemetry = spark.createDataFrame(
        [(hour(h), 1, float(h), 2.0 * h, 100.0, 40.0) for h in range(0, 49)],
        "datetime timestamp, machineID int, volt double, rotate double, pressure double, vibration double",
    )
    errors = spark.createDataFrame(
        [(hour(0), 1, "error1"), (hour(1), 1, "error1"), (hour(24), 1, "error2"), (hour(25), 1, "error3")],
        "datetime timestamp, machineID int, errorID string",
    )
    maint = spark.createDataFrame(
        [(dt.datetime(2014, 12, 1, 6), 1, "comp1"), (hour(24), 1, "comp2"), (hour(28), 1, "comp3")],
        "datetime timestamp, machineID int, comp string",
    )
    machines = spark.createDataFrame([(1, "model3", 18)], "machineID int, model string, age int")
    rows = build_features(telemetry, errors, maint, machines, dt.date(2015, 1, 2), dt.date(2015, 1, 3), SPEC)
    return {r.datetime: r for r in rows.collect()}


def test_one_row_every_three_hours(hand_made):
    assert sorted(hand_made) == [hour(24 + 3 * k) for k in range(8)]
    assert {r.model for r in hand_made.values()} == {"model3"}
    assert {r.age for r in hand_made.values()} == {18}


def test_rolling_means_and_stds_use_the_readings_up_to_t(hand_made):
    r = hand_made[hour(24)]
    assert r.volt_mean_3h == pytest.approx(23.0)  # hours 22, 23, 24
    assert r.volt_std_3h == pytest.approx(1.0)
    assert r.volt_mean_24h == pytest.approx(12.5)  # hours 1 .. 24
    assert r.volt_std_24h == pytest.approx(math.sqrt(50.0))  # sample variance of 24 consecutive integers
    assert r.rotate_mean_3h == pytest.approx(46.0)
    assert r.pressure_std_24h == pytest.approx(0.0)
    assert hand_made[hour(45)].volt_mean_3h == pytest.approx(44.0)


def test_error_counts_cover_the_last_24_hours(hand_made):
    at24, at27 = hand_made[hour(24)], hand_made[hour(27)]
    # (t - 24h, t]: the error at hour 0 is out, the one at t itself is in, hour 25 is the future
    assert (at24.error1_count_24h, at24.error2_count_24h, at24.error3_count_24h) == (1, 1, 0)
    assert (at27.error1_count_24h, at27.error2_count_24h, at27.error3_count_24h) == (0, 1, 1)
    assert at24.error4_count_24h == at24.error5_count_24h == 0


def test_days_since_replacement_uses_history_before_start(hand_made):
    at24, at27, at30 = hand_made[hour(24)], hand_made[hour(27)], hand_made[hour(30)]
    assert at24.comp1_days_since_replacement == pytest.approx(31.75)  # replaced 2014-12-01 06:00
    assert at24.comp2_days_since_replacement == pytest.approx(0.0)  # replaced at t
    assert at27.comp2_days_since_replacement == pytest.approx(0.125)
    # comp3 is replaced at hour 28: not yet at 27, then 2 hours old at 30; before that, and for
    # comp4 that was never replaced, the age is counted from the start of the maintenance history
    assert at27.comp3_days_since_replacement == pytest.approx(31.75 + 0.125)
    assert at30.comp3_days_since_replacement == pytest.approx(2 / 24)
    assert at24.comp4_days_since_replacement == pytest.approx(31.75)


def test_labels_name_the_component_failing_in_the_next_24_hours(spark):
    rows = spark.createDataFrame([(hour(3 * k), 1) for k in range(16)], "datetime timestamp, machineID int")
    failures = spark.createDataFrame(
        [(hour(30), 1, "comp3"), (hour(30), 1, "comp1"), (hour(30), 2, "comp4")],
        "datetime timestamp, machineID int, failure string",
    )
    labels = {r.datetime: r.label for r in add_labels(rows, failures, horizon_hours=24).collect()}
    # t < failure <= t + 24h: hours 6 .. 27; at 30 the failure is now, not ahead; comp1 wins the tie
    assert [h for h in range(0, 48, 3) if labels[hour(h)] == "comp1"] == list(range(6, 30, 3))
    assert {labels[hour(h)] for h in (0, 3, 30, 33, 45)} == {"none"}
    assert len(labels) == 16  # machine 2's failure adds no rows


def test_features_at_t_do_not_change_when_the_future_changes(spark):
    """Rewrite every reading, error, replacement and failure after a cut: earlier features stay equal."""
    from pyspark.sql import functions as F

    frames = pdm.generate(3, dt.date(2015, 1, 1), dt.date(2015, 1, 11), seed=5)
    raw = {k: spark.createDataFrame(v) for k, v in frames.items()}
    cut = F.lit(dt.datetime(2015, 1, 6, 4)).cast("timestamp")  # between two feature times
    after = F.col("datetime") > cut
    future = {
        "telemetry": raw["telemetry"].select(
            "datetime", "machineID", *[F.when(after, F.col(s) * 10).otherwise(F.col(s)).alias(s) for s in pdm.SENSORS]
        ),
        "errors": raw["errors"].unionByName(
            spark.createDataFrame(
                [(dt.datetime(2015, 1, 6, 5), 1, "error5")], "datetime timestamp, machineID long, errorID string"
            )
        ),
        "maint": raw["maint"].unionByName(
            spark.createDataFrame(
                [(dt.datetime(2015, 1, 6, 5), 1, "comp1")], "datetime timestamp, machineID long, comp string"
            )
        ),
    }
    spec = SPEC
    start, end = dt.date(2015, 1, 2), dt.date(2015, 1, 11)

    def features(src):
        df = build_features(src["telemetry"], src["errors"], src["maint"], raw["machines"], start, end, spec)
        return {(r.machineID, r.datetime): tuple(r[c] for c in feature_columns(spec)) for r in df.collect()}

    before, changed = features(raw), features({**raw, **future})
    limit = dt.datetime(2015, 1, 6, 4)
    early = [k for k in before if k[1] <= limit]
    late = [k for k in before if k[1] > limit]
    assert len(early) == 3 * 8 * 4 + 3 * 2  # 2015-01-02 .. 2015-01-06 03:00
    assert all(before[k] == changed[k] for k in early)
    assert sum(before[k] != changed[k] for k in late) == len(late)  # the change is visible right after


def test_window_lengths_must_fit_the_step():
    with pytest.raises(ValueError, match="multiple of step_hours"):
        FeatureSpec(short_hours=4, long_hours=24, error_hours=24, step_hours=3)

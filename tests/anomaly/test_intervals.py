"""Interval aggregation worked out by hand, and the scoring window."""

from __future__ import annotations

import datetime as dt

import pytest

from refarch.anomaly.intervals import aggregate_intervals, readings_in_window, resolve_window

T0 = dt.datetime(2026, 1, 1, 0, 0)


def _readings(spark, rows):
    df = spark.createDataFrame(rows, "TS timestamp, Device string, Sensor string, Value double")
    from pyspark.sql import functions as F

    return df.withColumn("date", F.to_date("TS"))


def test_mean_std_min_max_count_per_interval(spark):
    s = dt.timedelta(seconds=1)
    rows = [
        (T0 + 10 * s, "d1", "temp", 1.0),
        (T0 + 20 * s, "d1", "temp", 3.0),
        (T0 + 50 * s, "d1", "temp", 5.0),
        (T0 + 50 * s, "d1", "temp", 5.0),  # the same reading twice counts once
        (T0 + 65 * s, "d1", "temp", 7.0),
        (T0 + 10 * s, "d2", "temp", 4.0),
    ]
    out = aggregate_intervals(_readings(spark, rows), 60).orderBy("device", "interval_start").collect()
    got = [(r.device, r.interval_start, r.mean, r.std, r.min, r.max, r["count"], r.hour) for r in out]
    assert got == [
        ("d1", T0, 3.0, 2.0, 1.0, 5.0, 3, 0),  # sample std of 1, 3, 5
        ("d1", T0 + 60 * s, 7.0, 0.0, 7.0, 7.0, 1, 0),  # one reading: std 0, not null
        ("d2", T0, 4.0, 0.0, 4.0, 4.0, 1, 0),
    ]


def test_intervals_are_aligned_to_the_clock(spark):
    rows = [(T0 + dt.timedelta(minutes=m), "d1", "s", float(m)) for m in (4, 5, 9, 10)]
    out = aggregate_intervals(_readings(spark, rows), 300).orderBy("interval_start").collect()
    assert [(r.interval_start, r["count"]) for r in out] == [
        (T0, 1),
        (T0 + dt.timedelta(minutes=5), 2),
        (T0 + dt.timedelta(minutes=10), 1),
    ]
    with pytest.raises(ValueError, match="divide an hour"):
        aggregate_intervals(_readings(spark, rows), 7)


def test_window_is_half_open(spark):
    rows = [(T0 + dt.timedelta(minutes=m), "d1", "s", 1.0) for m in (59, 60, 119, 120)]
    got = readings_in_window(_readings(spark, rows), T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2))
    assert sorted(r.TS.minute for r in got.collect()) == [0, 59]


def test_resolve_window():
    newest = dt.datetime(2026, 1, 2, 3, 17, 5)
    assert resolve_window(newest, None, 1) == (dt.datetime(2026, 1, 2, 3), dt.datetime(2026, 1, 2, 4))
    end = dt.datetime(2026, 1, 2, 0)
    assert resolve_window(None, end, 24) == (dt.datetime(2026, 1, 1, 0), end)
    with pytest.raises(ValueError, match="not on the hour"):
        resolve_window(None, dt.datetime(2026, 1, 2, 0, 30), 1)
    with pytest.raises(LookupError, match="no readings"):
        resolve_window(None, None, 1)

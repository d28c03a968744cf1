"""Precision and recall of flagged intervals against injected anomalies, worked out by hand."""

from __future__ import annotations

import datetime as dt

from refarch.anomaly.evaluate import Quality, evaluate, label_intervals

T0 = dt.datetime(2026, 1, 1, 0)


def _m(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_precision_and_recall(spark):
    predictions = spark.createDataFrame(
        [
            ("d1", "s", _m(0), 0.5, True),  # label 00:00:30-00:01:10 touches minutes 0 and 1: TP
            ("d1", "s", _m(1), -0.1, False),  # FN
            ("d1", "s", _m(2), 0.2, True),  # FP: label ended at 00:01:10
            ("d1", "s", _m(3), -0.3, False),  # TN
            ("d2", "s", _m(0), 0.4, True),  # FP: the label is d1's
            ("d1", "t", _m(5), 0.9, True),  # label ends exactly at the interval's first instant: TP
        ],
        "device string, sensor string, interval_start timestamp, score double, is_anomaly boolean",
    )
    labels = spark.createDataFrame(
        [("d1", "s", "drift", _m(0.5), _m(1 + 1 / 6)), ("d1", "t", "spike", _m(4.5), _m(5))],
        "Device string, Sensor string, kind string, start timestamp, end timestamp",
    )
    labelled = label_intervals(predictions, labels, 60).orderBy("device", "sensor", "interval_start").collect()
    assert [r.label for r in labelled] == [True, True, False, False, True, False]
    q = evaluate(predictions, labels, 60)
    assert q == Quality(intervals=6, true_positives=2, false_positives=2, false_negatives=1)
    assert q.precision == 0.5
    assert q.recall == 2 / 3
    assert abs(q.f1 - 4 / 7) < 1e-12


def test_no_flags_and_no_labels_give_zero_not_an_error():
    q = Quality(intervals=10, true_positives=0, false_positives=0, false_negatives=0)
    assert (q.precision, q.recall, q.f1) == (0.0, 0.0, 0.0)

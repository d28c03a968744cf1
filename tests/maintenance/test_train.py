"""Training: the split, class balance, metrics worked out by hand, a real fit."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from refarch.maintenance.train import (
    balance,
    evaluate,
    evaluate_counts,
    feature_importances,
    fit,
    label_index,
    temporal_split,
)

from .conftest import SPEC, tiny_features, train_settings


def test_metrics_from_counts_worked_out_by_hand():
    counts = pd.DataFrame(
        [
            ("none", "none", 90),
            ("none", "comp1", 2),
            ("comp1", "comp1", 6),
            ("comp1", "none", 2),
            ("comp2", "comp1", 1),  # the wrong component: a miss and a false alarm
            ("comp2", "comp2", 3),
        ],
        columns=["label", "predicted", "count"],
    )
    ev = evaluate_counts(counts)
    assert ev.confusion.loc["comp2", "comp1"] == 1
    assert ev.confusion.loc["none", "none"] == 90
    assert ev.per_class.loc["comp1", "precision"] == pytest.approx(6 / 9)
    assert ev.per_class.loc["comp1", "recall"] == pytest.approx(6 / 8)
    assert ev.per_class.loc["comp2", "f1"] == pytest.approx(2 * 1 * 0.75 / 1.75)
    assert ev.per_class.loc["comp3", "support"] == 0
    assert ev.pooled["failure_recall"] == pytest.approx(9 / 12)
    assert ev.pooled["failure_precision"] == pytest.approx(9 / 12)
    assert ev.pooled["accuracy"] == pytest.approx(99 / 104)
    assert ev.metrics()["recall_comp1"] == pytest.approx(0.75)


def test_temporal_split_cuts_at_midnight(features_df):
    train, test = temporal_split(features_df, dt.date(2015, 1, 3))
    assert train.agg({"datetime": "max"}).first()[0] == dt.datetime(2015, 1, 2, 21)
    assert test.agg({"datetime": "min"}).first()[0] == dt.datetime(2015, 1, 3)
    assert train.count() + test.count() == features_df.count()


def test_balance_keeps_every_failure_and_weights_classes(spark):
    df = spark.createDataFrame([("none",)] * 100 + [("comp1",)] * 10 + [("comp2",)] * 5, "label string")
    out = balance(df, train_settings(negative_fraction=1.0, class_weight_power=1.0))
    weights = {r.label: r.weight for r in out.select("label", "weight").distinct().collect()}
    assert weights == pytest.approx({"none": 115 / 300, "comp1": 115 / 30, "comp2": 115 / 15})
    sampled = balance(df, train_settings(negative_fraction=0.2, class_weight_power=0.0))
    counts = {r.label: r["count"] for r in sampled.groupBy("label").count().collect()}
    assert counts["comp1"] == 10 and counts["comp2"] == 5 and 5 <= counts["none"] <= 40
    assert {r.weight for r in sampled.select("weight").distinct().collect()} == {1.0}
    with pytest.raises(ValueError, match="only the classes"):
        balance(df.where("label = 'none'"), train_settings(negative_fraction=1.0))


def test_label_index_follows_the_class_order(spark):
    df = spark.createDataFrame([("none",), ("comp3",)], "label string")
    assert [r.label_index for r in label_index(df).collect()] == [0.0, 3.0]


@pytest.mark.parametrize("algorithm", ["random_forest", pytest.param("gbt_ovr", marks=pytest.mark.slow)])
def test_fit_learns_an_obvious_signal(spark, algorithm):
    features = spark.createDataFrame(tiny_features(days=8))
    settings = train_settings(algorithm=algorithm, num_trees=20, max_depth=4, max_iter=10, negative_fraction=1.0)
    train, test = temporal_split(features, dt.date(2015, 1, 6))
    model = fit(train, settings, SPEC)
    ev = evaluate(model, label_index(test))
    # boosted trees on 120 rows saturate to a few margin values and tie now and then
    floor = 1.0 if algorithm == "random_forest" else 0.75
    assert ev.pooled["failure_recall"] >= floor and ev.pooled["failure_precision"] >= floor
    top = feature_importances(model, SPEC)
    signal = {"volt_mean_3h", "volt_mean_24h", "rotate_mean_3h", "pressure_mean_3h", "vibration_mean_3h"}
    assert top.index[0] in signal
    assert top.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.slow
def test_the_logged_model_predicts_without_refarch(spark, tmp_path, python_without_refarch):
    """A Spark ML pipeline of Spark's own stages: a Python (and its own Spark) without refarch loads it
    from the logged folder and predicts what it predicts here."""
    import textwrap

    import mlflow

    features = spark.createDataFrame(tiny_features(days=8))
    settings = train_settings(algorithm="random_forest", num_trees=10, max_depth=4, negative_fraction=1.0)
    train, test = temporal_split(features, dt.date(2015, 1, 6))
    model = fit(train, settings, SPEC)
    path = tmp_path / "model"
    mlflow.spark.save_model(model, str(path))
    rows = test.limit(12).toPandas()
    expected = [float(p) for p in model.transform(test.limit(12)).select("prediction").toPandas()["prediction"]]
    rows.to_pickle(tmp_path / "rows.pkl")
    script = textwrap.dedent(
        f"""
        import json, mlflow, pandas as pd
        model = mlflow.pyfunc.load_model({str(path)!r})
        rows = pd.read_pickle({str(tmp_path / "rows.pkl")!r})
        import importlib.util
        print(json.dumps({{"refarch": importlib.util.find_spec("refarch") is not None,
                           "predictions": [float(p) for p in model.predict(rows)]}}))
        """
    )
    line = python_without_refarch.last_line(script, cwd=tmp_path)
    import json

    out = json.loads(line)
    assert out == {"refarch": False, "predictions": expected}

"""Many models in parallel: each group trains and scores alone; a broken group is logged, not fatal."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest

from refarch.anomaly.detectors import loads, model_blob
from refarch.anomaly.score import groups_without_intervals, score_intervals, upload_predictions
from refarch.anomaly.train import train_models
from refarch.runtime.blob import BlobLocation

T0 = dt.datetime(2026, 1, 1, 0)
FEATURES = ("mean", "std", "min", "max", "count")
SCHEMA = (
    "device string, sensor string, interval_start timestamp, "
    "mean double, std double, min double, max double, count long"
)


def _normal(device: str, sensor: str, n: int, seed: int, start: dt.datetime = T0) -> list[tuple]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        mean = 50 + rng.normal(0, 1)
        std = 2 + abs(rng.normal(0, 0.2))
        rows.append((device, sensor, start + dt.timedelta(minutes=i), mean, std, mean - 2 * std, mean + 2 * std, 12))
    return rows


def _train(spark, location, rows, model, version="v1"):
    intervals = spark.createDataFrame(rows, SCHEMA)
    out = train_models(intervals, location, model, "models", version)
    return out.toPandas().set_index(["device", "sensor"]).sort_index()


@pytest.fixture
def model(conf_settings):
    """conf/anomaly.yml's detector settings, with what these tests count on pinned."""
    return conf_settings.model.model_copy(update={"algorithm": "ocsvm", "min_intervals": 10})


def test_every_group_gets_its_own_model_or_a_reason(spark, location, model):
    rows = _normal("d1", "temp", 40, 1) + _normal("d2", "temp", 40, 2) + _normal("d3", "temp", 3, 3)
    groups = _train(spark, location, rows, model)
    assert groups["status"].to_dict() == {
        ("d1", "temp"): "ok",
        ("d2", "temp"): "ok",
        ("d3", "temp"): "too_few_intervals",
    }
    assert groups.loc[("d3", "temp"), "message"] == "3 usable interval(s), at least 10 needed"
    assert groups.loc[("d1", "temp"), "rows"] == 40
    assert groups.loc[("d1", "temp"), "blob"] == "models/d1/temp/v1/model.joblib"
    assert groups["seconds"].gt(0).all()
    names = set(location.container_client().list_blob_names(name_starts_with="models/"))
    assert names == {model_blob("models", d, "temp", "v1") for d in ("d1", "d2")}
    model = loads(location.container_client().download_blob("models/d1/temp/v1/model.joblib").readall())
    assert [name for name, _ in model.steps] == ["standardscaler", "oneclasssvm"]


def test_isolation_forest_is_an_option(spark, location, model):
    iforest = model.model_copy(update={"algorithm": "iforest"})
    groups = _train(spark, location, _normal("d1", "temp", 30, 1), iforest)
    assert groups["status"].tolist() == ["ok"]
    model = loads(location.container_client().download_blob(groups["blob"].iat[0]).readall())
    assert [name for name, _ in model.steps] == ["isolationforest"]


def test_a_failing_upload_is_that_groups_status(spark, azurite, model):
    nowhere = BlobLocation("no-such-container", connection_string=azurite.connection_string)
    groups = _train(spark, nowhere, _normal("d1", "temp", 20, 1), model)
    assert groups["status"].tolist() == ["failed"]
    assert "ContainerNotFound" in groups["message"].iat[0] or "does not exist" in groups["message"].iat[0]
    assert groups["blob"].isna().all()


def test_scoring_flags_outliers_and_logs_every_group(spark, location, model):
    train_rows = _normal("d1", "temp", 60, 1) + _normal("d2", "temp", 60, 2) + _normal("d9", "temp", 60, 9)
    groups = _train(spark, location, train_rows, model, version="v7")
    assert (groups["status"] == "ok").all()
    location.container_client().delete_blob("models/d2/temp/v7/model.joblib")  # model lost since training
    manifest = spark.createDataFrame(
        [(d, "temp", f"models/{d}/temp/v7/model.joblib", "v7") for d in ("d1", "d2", "d9")],
        "device string, sensor string, blob string, model_version string",
    )
    hour = dt.datetime(2026, 1, 2, 10)
    window = [
        ("d1", "temp", hour, 50.0, 2.1, 45.8, 54.2, 12),  # like training
        ("d1", "temp", hour + dt.timedelta(minutes=1), 90.0, 2.1, 85.8, 94.2, 12),  # mean far off
        ("d1", "temp", hour + dt.timedelta(minutes=2), 50.0, 0.0, 50.0, 50.0, 12),  # stuck
        ("d2", "temp", hour, 50.0, 2.0, 46.0, 54.0, 12),  # model blob gone
        ("d5", "temp", hour, 50.0, 2.0, 46.0, 54.0, 12),  # never had a model
    ]
    intervals = spark.createDataFrame(window, SCHEMA)
    scored = score_intervals(intervals, manifest, location, FEATURES)
    try:
        preds = scored.predictions.toPandas().sort_values("interval_start")
        log = scored.group_log.toPandas().set_index("device").sort_index()
        blobs = upload_predictions(scored.predictions, location, "predictions").collect()
    finally:
        scored.unpersist()
    assert preds["device"].tolist() == ["d1", "d1", "d1"]
    assert preds["is_anomaly"].tolist() == [False, True, True]
    assert preds["score"].iloc[1] > 0 > preds["score"].iloc[0]
    assert (preds["model_version"] == "v7").all()
    assert log["status"].to_dict() == {"d1": "ok", "d2": "model_unreadable", "d5": "missing_model"}
    assert log.loc["d1", "rows"] == 3 and log.loc["d1", "message"] == "2 of 3 interval(s) flagged"
    assert log.loc["d2", "message"] == "model blob models/d2/temp/v7/model.joblib not found"
    assert log.loc["d5", "rows"] == 1

    empty = groups_without_intervals(intervals, manifest).collect()
    assert [(r.device, r.status, r.rows) for r in empty] == [("d9", "no_intervals", 0)]

    assert [(b.blob, b.rows) for b in blobs] == [("predictions/2026-01-02/10/predictions.parquet", 3)]
    data = location.container_client().download_blob("predictions/2026-01-02/10/predictions.parquet").readall()
    stored = pd.read_parquet(io.BytesIO(data))
    assert list(stored.columns) == ["device", "sensor", "interval_start", "score", "is_anomaly", "model_version"]
    assert stored["is_anomaly"].tolist() == [False, True, True]


@pytest.mark.parametrize("bad", [float("nan")])
def test_groups_with_unusable_intervals_are_too_few(spark, location, bad, model):
    rows = [
        (d, s, t, bad if i % 2 else m, sd, lo, hi, c)
        for i, (d, s, t, m, sd, lo, hi, c) in enumerate(_normal("d1", "temp", 12, 1))
    ]
    groups = _train(spark, location, rows, model)
    assert groups["status"].tolist() == ["too_few_intervals"]
    assert groups["message"].iat[0] == "6 usable interval(s), at least 10 needed"

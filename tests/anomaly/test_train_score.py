"""Many models in parallel: groups packed per shard, one blob per shard, every group its own model.

A broken group is logged, not fatal; too many failed groups fail the task; scoring a shard at once
gives exactly what each group's own scikit-learn pipeline gives.
"""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest

from refarch.anomaly.detectors import fit_detector, score_detector
from refarch.anomaly.evaluate import evaluate
from refarch.anomaly.registry import build_manifest
from refarch.anomaly.score import groups_without_intervals, score_intervals, upload_predictions
from refarch.anomaly.shards import read_model, shard_blob
from refarch.anomaly.train import TooManyFailedGroups, check_failures, train_models
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


def _manifest(groups: pd.DataFrame, model, version: str):
    return build_manifest(groups.reset_index(), version, model.algorithm, FEATURES, 60, "c", model.shards)


@pytest.fixture
def model(conf_settings):
    """conf/anomaly.yml's detector settings, with what these tests count on pinned."""
    return conf_settings.model.model_copy(update={"algorithm": "ocsvm", "min_intervals": 10, "shards": 2})


def test_every_group_gets_its_own_model_in_one_blob_per_shard(spark, location, model):
    devices = [f"d{i}" for i in range(1, 7)]
    rows = [r for i, d in enumerate(devices) for r in _normal(d, "temp", 40, i)] + _normal("d9", "temp", 3, 9)
    groups = _train(spark, location, rows, model)
    statuses = groups["status"].to_dict()
    assert statuses == {**{(d, "temp"): "ok" for d in devices}, ("d9", "temp"): "too_few_intervals"}
    assert groups.loc[("d9", "temp"), "message"] == "3 usable interval(s), at least 10 needed"
    assert groups.loc[("d1", "temp"), "rows"] == 40
    assert groups["seconds"].gt(0).all()
    ok = groups[groups["status"] == "ok"]
    # both shards used, each group's blob is its shard's; slots number the groups of a shard 0, 1, ...
    assert sorted(ok["shard"].unique()) == [0, 1]
    assert (ok["blob"] == [shard_blob("models", "v1", s) for s in ok["shard"]]).all()
    for _, part in ok.groupby("shard"):
        assert sorted(part["slot"]) == list(range(len(part)))
    # the shard is the task Spark's hash partitioning gave the group: scoring partitions the same way
    expected = spark.createDataFrame(groups.reset_index()[["device", "sensor"]]).selectExpr(
        "device", "sensor", "pmod(hash(device, sensor), 2) AS shard"
    )
    assert {(r.device, r.shard) for r in expected.collect()} == {(d, s) for (d, _), s in groups["shard"].items()}
    container = location.container_client()
    assert set(container.list_blob_names(name_starts_with="models/")) == {
        "models/v1/shard-00000.bin",
        "models/v1/shard-00001.bin",
    }
    # one model is still one read: its own byte range of the shard
    r = ok.loc[("d1", "temp")]
    single = read_model(container, r["blob"], r["offset"], r["length"])
    assert [name for name, _ in single.steps] == ["standardscaler", "oneclasssvm"]
    train = pd.DataFrame(_normal("d1", "temp", 40, 0), columns=["d", "s", "t", *FEATURES])
    expected = fit_detector(train, model)  # the same rows, fitted alone
    probe = train.loc[:, list(FEATURES)].to_numpy()
    assert np.allclose(single.decision_function(probe), expected.decision_function(probe), rtol=0, atol=1e-12)


def test_isolation_forest_is_an_option(spark, location, model):
    iforest = model.model_copy(update={"algorithm": "iforest"})
    groups = _train(spark, location, _normal("d1", "temp", 30, 1), iforest)
    assert groups["status"].tolist() == ["ok"]
    assert groups["bank_offset"].isna().all()  # no bank: scoring unpickles each forest
    r = groups.iloc[0]
    model = read_model(location.container_client(), r["blob"], r["offset"], r["length"])
    assert [name for name, _ in model.steps] == ["isolationforest"]


def test_a_failed_upload_fails_its_groups_and_too_many_fail_the_task(spark, azurite, model):
    nowhere = BlobLocation("no-such-container", connection_string=azurite.connection_string)
    rows = _normal("d1", "temp", 20, 1) + _normal("d2", "temp", 20, 2) + _normal("d3", "temp", 2, 3)
    groups = _train(spark, nowhere, rows, model)
    assert groups["status"].to_dict() == {
        ("d1", "temp"): "failed",
        ("d2", "temp"): "failed",
        ("d3", "temp"): "too_few_intervals",
    }
    message = groups.loc[("d1", "temp"), "message"]
    assert message.startswith("upload of azurite://no-such-container/models/v1/shard-0000")
    assert "ContainerNotFound" in message or "does not exist" in message
    assert groups["blob"].isna().all() and groups["offset"].isna().all()
    with pytest.raises(TooManyFailedGroups, match=r"2 of 3 group\(s\) \(66.7%\) failed to train, above .*1.0%"):
        check_failures(groups.reset_index(), 0.01)
    check_failures(groups.reset_index(), 0.7)  # within the limit: logged, not raised


def test_scoring_flags_outliers_and_logs_every_group(spark, location, model):
    train_rows = _normal("d1", "temp", 60, 1) + _normal("d2", "temp", 60, 2) + _normal("d9", "temp", 60, 9)
    groups = _train(spark, location, train_rows, model, version="v7")
    assert (groups["status"] == "ok").all()
    manifest = _manifest(groups, model, "v7")
    index = manifest.index()
    index.loc[index["device"] == "d2", "blob"] = "models/v7/shard-09999.bin"  # a shard lost since training
    models = spark.createDataFrame(
        index,
        "device string, sensor string, blob string, slot int, offset long, "
        "length long, bank_offset long, bank_length long, model_version string",
    )
    hour = dt.datetime(2026, 1, 2, 10)
    window = [
        ("d1", "temp", hour, 50.0, 2.1, 45.8, 54.2, 12),  # like training
        ("d1", "temp", hour + dt.timedelta(minutes=1), 90.0, 2.1, 85.8, 94.2, 12),  # mean far off
        ("d1", "temp", hour + dt.timedelta(minutes=2), 50.0, 0.0, 50.0, 50.0, 12),  # stuck
        ("d2", "temp", hour, 50.0, 2.0, 46.0, 54.0, 12),  # model shard gone
        ("d5", "temp", hour, 50.0, 2.0, 46.0, 54.0, 12),  # never had a model
    ]
    intervals = spark.createDataFrame(window, SCHEMA)
    scored = score_intervals(intervals, models, location, FEATURES, model.shards)
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
    assert log.loc["d2", "message"] == "model shard models/v7/shard-09999.bin not found"
    assert log.loc["d5", "rows"] == 1 and log.loc["d5", "model_version"] is None

    empty = groups_without_intervals(intervals, models).collect()
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


@pytest.mark.parametrize("algorithm", ["ocsvm", "iforest"])
def test_packed_scoring_has_the_quality_of_one_pipeline_per_group(spark, location, model, algorithm):
    """Generated readings with injected anomalies: the same flags, so the same precision and recall,
    as fitting and scoring each group's scikit-learn pipeline on its own."""
    from pyspark.sql import functions as F

    from refarch.anomaly.intervals import aggregate_intervals
    from refarch.datasets.sensors import SensorSpec, generate

    model = model.model_copy(update={"algorithm": algorithm, "shards": 3})
    spec = SensorSpec(devices=6, sensors=3, step_seconds=10, anomaly_rate=0.6, seed=5)
    readings, labels = generate(spec, T0, 8)

    def intervals(first: int, last: int):
        part = readings[
            (readings["TS"] >= T0 + dt.timedelta(hours=first)) & (readings["TS"] < T0 + dt.timedelta(hours=last))
        ]
        df = spark.createDataFrame(part).withColumn("date", F.to_date("TS"))
        return aggregate_intervals(df, 60).cache()

    train_iv, score_iv = intervals(0, 6), intervals(6, 8)
    groups = train_models(train_iv, location, model, "models", "q1").toPandas()
    assert (groups["status"] == "ok").sum() == 18
    manifest = build_manifest(groups, "q1", algorithm, FEATURES, 60, "c", model.shards)
    scored = score_intervals(score_iv, manifest.frame(spark), location, FEATURES, model.shards)
    try:
        ours = scored.predictions.toPandas()
        quality = evaluate(scored.predictions, spark.createDataFrame(labels), 60)
    finally:
        scored.unpersist()

    # the reference: each group fitted and scored alone, rows in time order
    train_pd, score_pd = train_iv.toPandas(), score_iv.toPandas()
    reference = []
    for (device, sensor), rows in score_pd.groupby(["device", "sensor"]):
        fitted = fit_detector(
            train_pd[(train_pd["device"] == device) & (train_pd["sensor"] == sensor)].sort_values("interval_start"),
            model,
        )
        scores, flags = score_detector(fitted, rows, FEATURES)
        reference.append(rows.loc[:, ["device", "sensor", "interval_start"]].assign(ref_score=scores, ref_flag=flags))
    reference = pd.concat(reference)
    both = ours.merge(reference, on=["device", "sensor", "interval_start"], validate="one_to_one")
    assert len(both) == len(score_pd) == 18 * 120
    assert (both["is_anomaly"] == both["ref_flag"]).all()
    assert np.allclose(both["score"], both["ref_score"], rtol=0, atol=1e-9)
    ref_quality = evaluate(
        spark.createDataFrame(both.loc[:, ["device", "sensor", "interval_start"]].assign(is_anomaly=both["ref_flag"])),
        spark.createDataFrame(labels),
        60,
    )
    assert (quality.precision, quality.recall) == (ref_quality.precision, ref_quality.recall)
    assert quality.true_positives > 0 and quality.precision > 0.25 and quality.recall > 0.3


def test_too_many_failed_groups_fail_training_after_the_run_log_names_each(spark, tables, settings, azurite, config):
    import mlflow

    from refarch.anomaly.train import train_model_set
    from refarch.runtime.tracking import configure_mlflow

    configure_mlflow(config, "anomaly-tests")
    nowhere = BlobLocation("no-such-container", connection_string=azurite.connection_string)
    intervals = spark.createDataFrame(_normal("d1", "temp", 20, 1) + _normal("d2", "temp", 20, 2), SCHEMA)
    with mlflow.start_run(), pytest.raises(TooManyFailedGroups, match=r"2 of 2 group\(s\) \(100.0%\) failed"):
        train_model_set(tables, settings, intervals, nowhere, "anomaly_never_registered", "train-fails")
    log = tables.read(settings.tables.run_log).toPandas()
    groups = log[log["device"].notna()].set_index("device").sort_index()
    assert groups["status"].to_dict() == {"d1": "failed", "d2": "failed"}
    assert groups["message"].str.startswith("upload of azurite://no-such-container/models/").all()
    (summary,) = log[log["device"].isna()].itertuples()
    assert summary.status == "failed" and "model.max_failed_share (1.0%)" in summary.message


def test_batched_fits_are_the_pipelines_fitted_one_by_one():
    """fit_many (scalers in one pass, checks once) gives each group the pipeline `fit_matrix` gives it,
    also with 12 intervals a group, where OneClassSVM's solution hangs on the last bits of its input."""
    from refarch.anomaly.detectors import fit_many, fit_matrix, scaler_stats
    from refarch.anomaly.settings import ModelSettings

    rng = np.random.default_rng(7)
    sizes = rng.integers(10, 40, size=300)
    sizes[:100] = 12
    x = rng.normal(50, 3, size=(int(sizes.sum()), 5))
    x[:, 4] = 12.0  # a constant feature: scaled by 1, as StandardScaler does
    starts = np.concatenate([[0], np.cumsum(sizes)])
    probe = rng.normal(50, 5, size=(40, 5))
    probe[:, 4] = 12.0
    settings = ModelSettings.model_validate(
        {
            "algorithm": "ocsvm",
            "features": FEATURES,
            "min_intervals": 10,
            "shards": 1,
            "max_failed_share": 0.0,
            "ocsvm": {"nu": 0.01, "gamma": 0.05, "kernel": "rbf"},
            "iforest": {"n_estimators": 10, "contamination": 0.02, "random_state": 0},
        }
    )
    mean, var, scale = scaler_stats(x, starts)
    batched = fit_many(x, starts, settings)
    for i, model in enumerate(batched):
        alone = fit_matrix(x[starts[i] : starts[i + 1]], settings)
        scaler = alone.steps[0][1]
        assert np.allclose(mean[i], scaler.mean_, rtol=1e-14) and np.allclose(var[i], scaler.var_, rtol=1e-12)
        assert np.allclose(scale[i], scaler.scale_, rtol=1e-12)
        assert scale[i][4] == 1.0
        assert np.array_equal(model.decision_function(probe) > 0, alone.decision_function(probe) > 0)
        assert np.allclose(model.decision_function(probe), alone.decision_function(probe), rtol=0, atol=1e-12)

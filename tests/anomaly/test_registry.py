"""The model set in MLflow: one registered model carrying every group's model (in shards), its code and pins."""

from __future__ import annotations

import textwrap
import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest

from refarch.anomaly.registry import Manifest, build_manifest, download_shards, load_manifest, register_model_set
from refarch.anomaly.train import train_models
from refarch.runtime.tracking import configure_mlflow

FEATURES = ("mean", "std", "min", "max", "count")
SCHEMA = (
    "device string, sensor string, interval_start timestamp, "
    "mean double, std double, min double, max double, count long"
)


@pytest.fixture(scope="module")
def mlflow_config(config):
    configure_mlflow(config, "anomaly-tests")
    return config


def _intervals(device: str, n: int, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    mean = 50 + rng.normal(0, 1, n)
    std = 2.0 + rng.normal(0, 0.1, n)
    start = pd.Timestamp("2026-01-01")
    return [
        (device, "temp", (start + pd.Timedelta(minutes=i)).to_pydatetime(), float(m), float(s), m - 4.0, m + 4.0, 12)
        for i, (m, s) in enumerate(zip(mean.tolist(), std.tolist(), strict=True))
    ]


ROWS = pd.DataFrame(
    {
        "device": ["dev-1", "dev-1", "dev-1", "dev-2", "dev-3"],
        "sensor": "temp",
        "mean": [50.0, 50.2, 95.0, 50.0, 50.0],  # the third is far from anything dev-1 saw in training
        "std": [2.0, 2.0, 2.0, 2.0, 2.0],
        "min": [46.0, 46.2, 91.0, 46.0, 46.0],
        "max": [54.0, 54.2, 99.0, 54.0, 54.0],
        "count": [12, 12, 12, 12, 12],
    }
)


def test_manifest_lists_only_trained_groups_with_their_byte_ranges():
    trained = pd.DataFrame(
        {
            "device": ["d2", "d1", "d3"],
            "sensor": ["s", "s", "s"],
            "status": ["ok", "ok", "too_few_intervals"],
            "rows": [30, 40, 2],
            "blob": ["models/v/shard-00001.bin", "models/v/shard-00000.bin", None],
            "shard": [1, 0, 1],
            "slot": [0, 0, None],
            "offset": [0, 0, None],
            "length": [900, 950, None],
            "bank_offset": [900, 950, None],
            "bank_length": [300, 310, None],
        }
    )
    m = build_manifest(trained, "v", "ocsvm", FEATURES, 60, "refarch", 2)
    assert [x["device"] for x in m.models] == ["d1", "d2"]
    assert m.models[0] == {
        "device": "d1",
        "sensor": "s",
        "intervals": 40,
        "shard": 0,
        "slot": 0,
        "offset": 0,
        "length": 950,
    }
    assert m.shards == (
        {"shard": 0, "blob": "models/v/shard-00000.bin", "models": 1, "bank": [950, 310]},
        {"shard": 1, "blob": "models/v/shard-00001.bin", "models": 1, "bank": [900, 300]},
    )
    assert Manifest.from_json(m.to_json()) == m
    index = m.index().set_index("device")
    assert index.loc["d2", "blob"] == "models/v/shard-00001.bin" and index.loc["d2", "bank_offset"] == 900


def test_register_load_and_predict_without_blob_storage_or_refarch(
    spark, mlflow_config, location, conf_settings, tmp_path, python_without_refarch
):
    model = conf_settings.model.model_copy(update={"algorithm": "ocsvm", "shards": 2})
    intervals = spark.createDataFrame(_intervals("dev-1", 50, 1) + _intervals("dev-2", 50, 2), SCHEMA)
    trained = train_models(intervals, location, model, "models", "v9").toPandas()
    manifest = build_manifest(trained, "v9", "ocsvm", FEATURES, 60, location.container, 2)
    name = f"anomaly_test_{uuid.uuid4().hex[:6]}"
    shard_dir = download_shards(manifest, location, tmp_path / "shards")
    with mlflow.start_run():
        version = register_model_set(manifest, shard_dir, name, "champion")
    assert version == "1"
    assert load_manifest(name, "champion") == manifest

    for s in manifest.shards:  # the registered model carries its own copy: Blob storage is not needed
        location.container_client().delete_blob(s["blob"])
    out = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(ROWS)
    assert out["status"].tolist() == ["ok", "ok", "ok", "ok", "missing_model"]
    assert out["is_anomaly"].tolist() == [False, False, True, False, False]
    assert np.isnan(out["score"].iloc[4]) and out["score"].iloc[2] > 0

    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}@champion", dst_path=str(tmp_path / "m"))
    requirements = (tmp_path / "m" / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} >= {"numpy", "pandas", "scikit-learn"}
    assert all("==" in r for r in requirements) and not any("refarch" in r or "azure" in r for r in requirements)
    ROWS.to_parquet(tmp_path / "rows.parquet")
    script = textwrap.dedent(
        f"""
        import sys, mlflow, pandas as pd
        model = mlflow.pyfunc.load_model({local!r})
        out = model.predict(pd.read_parquet({str(tmp_path / "rows.parquet")!r}))
        import refarch
        assert refarch.__file__.startswith({local!r}), refarch.__file__  # the copy the model carries
        loaded = sorted(m for m in sys.modules if m.startswith("refarch."))  # no config, Spark or Blob code
        assert loaded == ["refarch.anomaly", "refarch.anomaly.detectors", "refarch.anomaly.registry",
                          "refarch.anomaly.shards"], loaded
        print(out.to_json(orient="records", double_precision=15))
        """
    )
    line = python_without_refarch.last_line(script, cwd=tmp_path)
    elsewhere = pd.read_json(line, orient="records")
    assert elsewhere["status"].tolist() == out["status"].tolist()
    assert elsewhere["is_anomaly"].tolist() == out["is_anomaly"].tolist()
    assert np.allclose(elsewhere["score"].iloc[:4], out["score"].iloc[:4], rtol=0, atol=1e-12)


def test_scoring_without_a_registered_set_says_what_to_run(mlflow_config):
    with pytest.raises(LookupError, match="run the anomaly_training job first"):
        load_manifest(f"anomaly_missing_{uuid.uuid4().hex[:6]}", "champion")

"""The model set in MLflow: one registered model whose manifest lists every group's blob."""

from __future__ import annotations

import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest

from refarch.anomaly.detectors import dumps, fit_detector
from refarch.anomaly.registry import Manifest, build_manifest, load_manifest, register_model_set
from refarch.runtime.blob import container_client
from refarch.runtime.tracking import configure_mlflow

FEATURES = ("mean", "std", "min", "max", "count")


@pytest.fixture(scope="module")
def mlflow_config(config):
    configure_mlflow(config, "anomaly-tests")
    return config


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mean = 50 + rng.normal(0, 1, n)
    return pd.DataFrame(
        {"mean": mean, "std": 2.0 + rng.normal(0, 0.1, n), "min": mean - 4, "max": mean + 4, "count": 12}
    )


def test_manifest_lists_only_trained_groups():
    trained = pd.DataFrame(
        {
            "device": ["d2", "d1", "d3"],
            "sensor": ["s", "s", "s"],
            "status": ["ok", "ok", "too_few_intervals"],
            "rows": [30, 40, 2],
            "blob": ["models/d2/s/v/model.joblib", "models/d1/s/v/model.joblib", None],
        }
    )
    m = build_manifest(trained, "v", "ocsvm", FEATURES, 60, "refarch")
    assert [x["device"] for x in m.models] == ["d1", "d2"]
    assert m.models[0] == {"device": "d1", "sensor": "s", "blob": "models/d1/s/v/model.joblib", "intervals": 40}
    assert Manifest.from_json(m.to_json()) == m


def test_register_load_and_predict(mlflow_config, azurite, conf_settings):
    container = container_client(mlflow_config)
    model = fit_detector(_frame(50, 1), conf_settings.model)
    blob = f"models/dev-1/temp/{uuid.uuid4().hex[:6]}/model.joblib"
    container.upload_blob(blob, dumps(model), overwrite=True)
    manifest = Manifest(
        "v9", "ocsvm", FEATURES, 60, "refarch", ({"device": "dev-1", "sensor": "temp", "blob": blob, "intervals": 50},)
    )
    name = f"anomaly_test_{uuid.uuid4().hex[:6]}"
    with mlflow.start_run():
        version = register_model_set(manifest, name, "champion")
    assert version == "1"
    assert load_manifest(name, "champion") == manifest

    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    rows = pd.DataFrame(
        {
            "device": "dev-1",
            "sensor": "temp",
            "mean": [50.0, 50.2, 95.0],  # the last is far from anything seen in training
            "std": [2.0, 2.0, 2.0],
            "min": [46.0, 46.2, 91.0],
            "max": [54.0, 54.2, 99.0],
            "count": [12, 12, 12],
        }
    )
    unknown = rows.iloc[[0]].assign(device="dev-2")
    out = pyfunc.predict(pd.concat([rows, unknown], ignore_index=True))
    assert out["status"].tolist() == ["ok", "ok", "ok", "missing_model"]
    assert out["is_anomaly"].tolist() == [False, False, True, False]
    assert np.isnan(out["score"].iloc[3])


def test_scoring_without_a_registered_set_says_what_to_run(mlflow_config):
    with pytest.raises(LookupError, match="run the anomaly_training job first"):
        load_manifest(f"anomaly_missing_{uuid.uuid4().hex[:6]}", "champion")

"""A registered model keeps working from a copied $REFARCH_HOME, with the copy's store and files, not the original's."""

from __future__ import annotations

import shutil

import httpx
import mlflow
import numpy as np

from refarch.serving.app import create_app
from refarch.serving.auth import ApiKeys

KEY = "home-key-0123456789abcdef"


def test_a_copied_home_serves_from_its_own_store_and_files(tmp_path, monkeypatch, server_thread):
    from mlflow import MlflowClient

    from refarch.recommender.model import Factors, RecommenderModel
    from refarch.recommender.store import SqliteStore, portable_settings
    from refarch.runtime.config import load_config

    home, copy = tmp_path / "home", tmp_path / "copy"
    home.mkdir()
    monkeypatch.setenv("REFARCH_HOME", str(home))
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        m = load_config().target.mlflow
        mlflow.set_tracking_uri(m.tracking_uri)
        mlflow.set_registry_uri(m.registry_uri)
        experiment = mlflow.create_experiment("home-test", artifact_location=(home / "mlartifacts" / "x").as_uri())
        store = SqliteStore(home / "serving.db")
        store.publish([(1, [5], [1.0])], [9], [1.0])
        store.close()
        Factors.build(np.array([1]), np.eye(1), np.array([5]), np.eye(1), np.array([1]), np.array([5])).save(
            tmp_path / "factors.npz"
        )
        settings = portable_settings({"kind": "sqlite", "path": str(home / "serving.db")}, home)
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.pyfunc.log_model(
                name="recommender",
                python_model=RecommenderModel(settings),
                artifacts={"factors": str(tmp_path / "factors.npz")},
                registered_model_name="home_test",
                pip_requirements=["mlflow"],
            )
        MlflowClient().set_registered_model_alias("home_test", "champion", info.registered_model_version)

        shutil.copytree(home, copy)
        store = SqliteStore(copy / "serving.db")
        version = store.publish([(1, [6], [1.0])], [9], [1.0])  # the copy serves its own lists
        store.close()
        shutil.rmtree(home)  # and nothing of the original is left to fall back on

        monkeypatch.setenv("REFARCH_HOME", str(copy))
        m = load_config().target.mlflow
        mlflow.set_tracking_uri(m.tracking_uri)
        mlflow.set_registry_uri(m.registry_uri)
        with server_thread(create_app("models:/home_test@champion", api_keys=ApiKeys([KEY]))) as srv:
            r = httpx.post(
                srv.url + "/invocations", json={"inputs": [{"user_id": 1, "k": 1}]}, headers={"X-API-Key": KEY}
            )
        assert r.status_code == 200, r.text
        (answer,) = r.json()["predictions"]
        assert (answer["store_version"], answer["items"]) == (version, [{"item_id": 6, "score": 1.0}])
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])

"""Fixtures for the serving tests: a real redis-server on a free loopback port, started and stopped here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from refarch.runtime.local_redis import LocalRedis, LocalRedisError

REPO_ROOT = Path(__file__).resolve().parents[2]


def _started(server: LocalRedis, timeout: float) -> LocalRedis:
    """Start `server`; a redis that is missing or does not come up fails the test with the reason."""
    try:
        return server.start(timeout)
    except LocalRedisError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A throw-away redis-server (no persistence) with a password; yields host, port and password."""
    server = LocalRedis(tmp_path_factory.mktemp("redis"), password="test-redis-secret")
    try:
        _started(server, timeout=5)
        yield {"host": "127.0.0.1", "port": server.port, "password": server.password}
    finally:
        server.stop()


@pytest.fixture()
def redis_client(redis_server: dict) -> Iterator:
    """A client on a clean database."""
    import redis

    client = redis.Redis(host=redis_server["host"], port=redis_server["port"], password=redis_server["password"])
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def tracking_uri(config) -> str:
    """MLflow on the test home's SQLite file, artifacts under it too (never ./mlruns)."""
    from refarch.runtime.tracking import configure_mlflow

    configure_mlflow(config, "serving-tests")
    return config.target.mlflow.tracking_uri


@pytest.fixture(scope="session")
def tiny_recommender(tmp_path_factory: pytest.TempPathFactory, tracking_uri: str) -> dict:
    """A published SQLite store and a logged `recommender` pyfunc over hand-made factors.

    Users 1 and 2, items 10..14. User 1 saw item 12. Precomputed depth 2.
    """
    import mlflow
    import numpy as np

    from refarch.recommender.model import Factors, RecommenderModel
    from refarch.recommender.store import SqliteStore

    folder = tmp_path_factory.mktemp("tiny-recommender")
    store_path = folder / "serving.db"
    store = SqliteStore(store_path)
    version = store.publish(
        [(1, [11, 10], [0.9, 0.8]), (2, [14, 13], [0.7, 0.6])],
        popular_items=[13, 10, 11],
        popular_scores=[30.0, 20.0, 10.0],
    )
    store.close()
    # user 1 = (1, 0): scores are item factor x -> 10: 5, 11: 4, 12: 3 (seen), 13: 2, 14: 1
    factors = Factors.build(
        user_ids=np.array([2, 1]),
        user_factors=np.array([[0.0, 1.0], [1.0, 0.0]]),
        item_ids=np.array([10, 11, 12, 13, 14]),
        item_factors=np.array([[5.0, 1.0], [4.0, 2.0], [3.0, 3.0], [2.0, 4.0], [1.0, 5.0]]),
        seen_users=np.array([1, 2]),
        seen_items=np.array([12, 12]),
    )
    factors_path = folder / "factors.npz"
    factors.save(factors_path)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="recommender",
            python_model=RecommenderModel({"kind": "sqlite", "path": str(store_path)}),
            artifacts={"factors": str(factors_path)},
            pip_requirements=["mlflow"],
        )
    return {"uri": info.model_uri, "store_path": store_path, "version": version}


@pytest.fixture()
def own_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalRedis]:
    """A redis-server of one test's own, to kill (SIGKILL) or freeze (SIGSTOP) without harming the others.

    Its password is in $OWN_REDIS_PASSWORD, where its `settings` point.
    """
    server = LocalRedis(tmp_path, password="own-redis-secret", password_env="OWN_REDIS_PASSWORD")
    monkeypatch.setenv("OWN_REDIS_PASSWORD", server.password)
    _started(server, timeout=5)
    yield server
    server.stop()


def _cluster(folder: Path) -> LocalRedis:
    """3 primaries, no replicas; a short node timeout so a killed primary is noticed quickly."""
    return LocalRedis(
        folder, password="cluster-secret", password_env="CLUSTER_PASSWORD", nodes=3, cluster=True, node_timeout_ms=1000
    )


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    """A 3-node cluster shared by the tests that only publish and read (each under its own prefix)."""
    cluster = _cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield _started(cluster, timeout=20)
    finally:
        cluster.stop()


@pytest.fixture()
def own_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalRedis]:
    """A 3-node cluster of one test's own (to kill a primary); its password is in $CLUSTER_PASSWORD."""
    cluster = _cluster(tmp_path / "cluster")
    monkeypatch.setenv("CLUSTER_PASSWORD", cluster.password)
    try:
        yield _started(cluster, timeout=20)
    finally:
        cluster.stop()

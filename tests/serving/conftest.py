"""Fixtures for the serving tests: a real redis-server on a free loopback port, started and stopped here."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from refarch.runtime.blob import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A throw-away redis-server (no persistence) with a password; yields host, port and password."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    password = "test-redis-secret"
    folder: Path = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            password,
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not start within 5 s")
        yield {"host": "127.0.0.1", "port": port, "password": password}
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


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


class OwnRedis:
    """A redis-server of one test's own, to kill (SIGKILL) or freeze (SIGSTOP) without harming the others."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.password = "own-redis-secret"
        self.cmd = [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        self.cmd += ["--save", "", "--appendonly", "no", "--requirepass", self.password, "--dir", str(folder)]
        self.proc: subprocess.Popen | None = None

    @property
    def settings(self) -> dict:
        return {"kind": "redis", "host": "127.0.0.1", "port": self.port, "password_env": "OWN_REDIS_PASSWORD"}

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password)
        try:
            for _ in range(200):
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.025)
            pytest.fail("redis-server did not start within 5 s")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture()
def own_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OwnRedis]:
    """A started OwnRedis; its password is in $OWN_REDIS_PASSWORD (the `settings` point there)."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
    server = OwnRedis(tmp_path)
    monkeypatch.setenv("OWN_REDIS_PASSWORD", server.password)
    server.start()
    yield server
    server.stop()


def free_cluster_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of loopback ports for a cluster node")


class OwnCluster:
    """A Redis Cluster of `nodes` primaries (no replicas) on loopback ports, with a password.

    Made as the issue says: `redis-server --cluster-enabled yes` per node, then
    `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`. `kill(i)` SIGKILLs one primary.
    """

    password = "cluster-secret"

    def __init__(self, folder: Path, nodes: int = 3, node_timeout_ms: int = 1000) -> None:
        self.folder = folder
        self.ports = [free_cluster_port() for _ in range(nodes)]
        self.node_timeout_ms = node_timeout_ms
        self.procs: list[subprocess.Popen] = []

    @property
    def settings(self) -> dict:
        port = self.ports[0]
        return {"kind": "redis", "cluster": True, "host": "127.0.0.1", "port": port, "password_env": "CLUSTER_PASSWORD"}

    def start(self) -> None:
        import redis

        binary = shutil.which("redis-server") or "redis-server"
        for port in self.ports:
            where = self.folder / str(port)
            where.mkdir(parents=True, exist_ok=True)
            cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
            cmd += ["--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(self.node_timeout_ms)]
            cmd += ["--save", "", "--appendonly", "no", "--requirepass", self.password, "--dir", str(where)]
            self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        clients = [redis.Redis(host="127.0.0.1", port=p, password=self.password) for p in self.ports]
        try:
            self._wait(lambda: all(c.ping() for c in clients), "nodes did not start")
            create = [shutil.which("redis-cli") or "redis-cli", "-a", self.password, "--no-auth-warning"]
            create += ["--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports)]
            create += ["--cluster-replicas", "0", "--cluster-yes"]
            done = subprocess.run(create, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            self._wait(
                lambda: all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients),
                "the cluster did not reach state ok",
            )
        finally:
            for c in clients:
                c.close()

    @staticmethod
    def _wait(done, message: str, seconds: float = 20.0) -> None:
        import redis

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if done():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        pytest.fail(f"redis cluster: {message} within {seconds:.0f} s")

    def kill(self, index: int) -> None:
        proc = self.procs[index]
        proc.kill()
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def _need_cluster_tools() -> None:
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (apt-get install -y redis-server)")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnCluster]:
    """A 3-node cluster shared by the tests that only publish and read (each under its own prefix)."""
    _need_cluster_tools()
    cluster = OwnCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture()
def own_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OwnCluster]:
    """A 3-node cluster of one test's own (to kill a primary); its password is in $CLUSTER_PASSWORD."""
    _need_cluster_tools()
    cluster = OwnCluster(tmp_path / "cluster")
    monkeypatch.setenv("CLUSTER_PASSWORD", cluster.password)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()

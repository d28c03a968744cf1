"""redis-server on loopback, started and stopped by refarch: one node, or a Redis Cluster of primaries.

What AzuriteServer is for Blob storage, this is for the serving store: the serving tests and
benchmarks run a real Redis (Debian's redis-server), standalone or in cluster mode (one
`redis-server --cluster-enabled yes` per node, joined with `redis-cli --cluster create`), and kill
or freeze a node of it on purpose. No persistence beyond an explicit snapshot file, and always a
password: the store reads it from an environment variable, as on a Databricks job cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from refarch.runtime.blob import LOOPBACK, free_port

CLUSTER_BUS_OFFSET = 10000  # a cluster node also listens on its port + 10000


class LocalRedisError(RuntimeError):
    """redis-server is missing, or a node or the cluster did not come up in time."""


def free_cluster_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + CLUSTER_BUS_OFFSET > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, port + CLUSTER_BUS_OFFSET))
            except OSError:
                continue
        return port
    raise LocalRedisError("no free pair of loopback ports for a cluster node")


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise LocalRedisError(f"{name} is not installed (apt-get install -y redis-server)")
    return found


class LocalRedis:
    """`nodes` redis-server processes on free loopback ports, standalone (one node) or a cluster.

    A one-node cluster gets every slot itself (`redis-cli --cluster create` wants 3 primaries).
    Nodes save only when told to (`SAVE`, to `dump.rdb` in their folder) and load that file when
    started again after `stop` or a kill, on the same ports.
    """

    def __init__(
        self,
        folder: Path,
        password: str,
        password_env: str = "REDIS_PASSWORD",
        nodes: int = 1,
        cluster: bool = False,
        node_timeout_ms: int | None = None,
    ) -> None:
        if nodes > 1 and not cluster:
            raise ValueError("several nodes make a cluster: pass cluster=True")
        self.folder = folder
        self.password = password
        self.password_env = password_env
        self.cluster = cluster
        self.node_timeout_ms = node_timeout_ms
        self.ports = [free_cluster_port() if cluster else free_port() for _ in range(nodes)]
        self.procs: list[subprocess.Popen] = []

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def proc(self) -> subprocess.Popen:
        return self.procs[0]

    @property
    def settings(self) -> dict[str, Any]:
        """Serving-store settings (`open_store`) for this server; the password is read from `password_env`."""
        out: dict[str, Any] = {"kind": "redis", "host": LOOPBACK, "port": self.port, "password_env": self.password_env}
        return {**out, "cluster": True} if self.cluster else out

    def client(self, index: int = 0, **kwargs: Any) -> Any:
        """A plain redis.Redis on one node (not a cluster client)."""
        import redis

        return redis.Redis(host=LOOPBACK, port=self.ports[index], password=self.password, **kwargs)

    def command(self, port: int) -> list[str]:
        where = self.folder / str(port)
        where.mkdir(parents=True, exist_ok=True)
        cmd = [_binary("redis-server"), "--port", str(port), "--bind", LOOPBACK]
        cmd += ["--save", "", "--appendonly", "no", "--requirepass", self.password, "--dir", str(where)]
        if self.cluster:
            cmd += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            if self.node_timeout_ms is not None:
                cmd += ["--cluster-node-timeout", str(self.node_timeout_ms)]
        return cmd

    def start(self, timeout: float = 10.0) -> LocalRedis:
        """Start every node (again, after `stop`), and form the cluster the first time; wait until it serves."""
        first = not self.procs
        commands = [self.command(port) for port in self.ports]
        self.procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands]
        clients = [self.client(i) for i in range(len(self.ports))]
        try:
            self._wait(lambda: all(c.ping() for c in clients), "did not start", timeout)
            if self.cluster and first:
                self._form_cluster(clients[0])
                self._wait(
                    lambda: all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients),
                    "did not reach cluster state ok",
                    timeout,
                )
        finally:
            for c in clients:
                c.close()
        return self

    def _form_cluster(self, first: Any) -> None:
        if len(self.ports) == 1:
            first.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            return
        create = [_binary("redis-cli"), "-a", self.password, "--no-auth-warning", "--cluster", "create"]
        create += [*(f"{LOOPBACK}:{p}" for p in self.ports), "--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise LocalRedisError(f"redis-cli --cluster create failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def _wait(self, done: Callable[[], bool], what: str, seconds: float) -> None:
        import redis

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if done():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.025)
        self.stop()
        raise LocalRedisError(f"redis on ports {self.ports}: {what} within {seconds:.0f} s")

    def signal(self, sig: int, index: int = 0) -> None:
        """Send a node a signal (SIGSTOP freezes it, SIGCONT resumes it); after SIGKILL, wait until it is gone."""
        self.procs[index].send_signal(sig)
        if sig == signal.SIGKILL:
            self.procs[index].wait(timeout=10)

    def kill(self, index: int = 0) -> None:
        self.signal(signal.SIGKILL, index)

    def cpu_seconds(self) -> list[float]:
        """CPU time (user + system) each node has used (Linux /proc)."""
        tick = os.sysconf("SC_CLK_TCK")
        out = []
        for proc in self.procs:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            out.append((int(fields[11]) + int(fields[12])) / tick)
        return out

    def stop(self) -> None:
        """Stop every node still running, a frozen one included."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

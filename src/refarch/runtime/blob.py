"""Blob storage per target: Azurite on loopback locally, an Azure Storage account in the cloud.

Pipelines ask `container_client(config)` for the target's container and never build a URL,
a key or a connection string. On the local target Azurite (installed by `npm install` into
`node_modules/`) is started on loopback when nothing listens on its port yet, with its data
under `<home>/azurite`, and stopped when the process exits.

`BlobLocation` is the small, picklable description of where blobs live, so Spark tasks
(e.g. one per many-model group) can open their own client on an executor.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from refarch.runtime.config import Config

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ContainerClient

log = logging.getLogger(__name__)

# The documented, public Azurite development account (not a secret: it only works against Azurite).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_PORT_ENV = "REFARCH_AZURITE_PORT"
LOOPBACK = "127.0.0.1"


class BlobConfigError(RuntimeError):
    """The blob settings of the target cannot give a client (missing env var, no Azurite)."""


def azurite_connection_string(port: int, host: str = LOOPBACK) -> str:
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{AZURITE_ACCOUNT};"
    )


def azurite_port(config: Config) -> int:
    """$REFARCH_AZURITE_PORT (tests pick a free port) else `blob.azurite_port` of the target."""
    env = os.environ.get(AZURITE_PORT_ENV)
    return int(env) if env else config.target.blob.azurite_port


@dataclass(frozen=True)
class BlobLocation:
    """Where the target's blobs live, in a form that pickles to Spark executors.

    Exactly one of `connection_string` and `account_url` is set; with an account URL the
    client authenticates with `DefaultAzureCredential` (managed identity on a cluster).
    """

    container: str
    connection_string: str | None = None
    account_url: str | None = None

    def service(self) -> BlobServiceClient:
        return _service_client(self.connection_string, self.account_url)

    def container_client(self) -> ContainerClient:
        return self.service().get_container_client(self.container)

    def url(self, name: str) -> str:
        """A readable address of a blob for logs and manifests."""
        if self.account_url:
            return f"{self.account_url.rstrip('/')}/{self.container}/{name}"
        return f"azurite://{self.container}/{name}"


_CLIENTS: dict[tuple[str | None, str | None], BlobServiceClient] = {}


def _service_client(connection_string: str | None, account_url: str | None) -> BlobServiceClient:
    """One client per process and location: it keeps the HTTP connection pool warm across groups."""
    key = (connection_string, account_url)
    client = _CLIENTS.get(key)
    if client is None:
        from azure.storage.blob import BlobServiceClient

        if connection_string:
            client = BlobServiceClient.from_connection_string(connection_string)
        elif account_url:
            from azure.identity import DefaultAzureCredential

            client = BlobServiceClient(account_url, credential=DefaultAzureCredential())
        else:
            raise BlobConfigError("a blob location needs a connection string or an account URL")
        _CLIENTS[key] = client
    return client


def blob_location(config: Config, start: bool = True) -> BlobLocation:
    """The target's blob location; on the local target Azurite is started if needed."""
    b = config.target.blob
    if b.connection_string_env:
        value = os.environ.get(b.connection_string_env)
        if not value:
            raise BlobConfigError(
                f"conf/{config.target.name}.yml: blob.connection_string_env names "
                f"${b.connection_string_env}, which is not set"
            )
        return BlobLocation(b.container, connection_string=value)
    if b.kind == "azurite":
        port = azurite_port(config)
        if start:
            ensure_azurite(config.home / "azurite", port, root=config.root)
        return BlobLocation(b.container, connection_string=azurite_connection_string(port))
    if not b.account_url:
        raise BlobConfigError(f"conf/{config.target.name}.yml: blob.kind is 'account' but blob.account_url is not set")
    return BlobLocation(b.container, account_url=b.account_url)


def container_client(config: Config, create: bool = True) -> ContainerClient:
    """The target's container, created on first use."""
    location = blob_location(config)
    client = location.container_client()
    if create:
        ensure_container(client)
    return client


def ensure_container(client: ContainerClient) -> None:
    from azure.core.exceptions import ResourceExistsError

    with contextlib.suppress(ResourceExistsError):
        client.create_container()


# ---- Azurite -----------------------------------------------------------------------


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now (for tests that start their own Azurite)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def azurite_executable(root: Path | None = None) -> Path:
    """`node_modules/.bin/azurite-blob` of the project (package.json), else one on PATH."""
    candidates = []
    if root is not None:
        candidates.append(root / "node_modules" / ".bin" / "azurite-blob")
    found = shutil.which("azurite-blob")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file():
            return path
    raise BlobConfigError(
        "Azurite is not installed: run `npm install` in the project root "
        "(package.json lists azurite), or set blob.kind: account in conf/<target>.yml"
    )


class AzuriteServer:
    """An Azurite blob service on loopback, started and stopped by us.

    Use as a context manager (tests) or let `ensure_azurite` keep one for the process.
    """

    def __init__(self, location: Path, port: int, root: Path | None = None) -> None:
        self.location = Path(location)
        self.port = port
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return azurite_connection_string(self.port)

    def start(self, timeout: float = 30.0) -> AzuriteServer:
        exe = azurite_executable(self.root)
        self.location.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(exe),
            "--blobHost",
            LOOPBACK,
            "--blobPort",
            str(self.port),
            "--location",
            str(self.location),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]
        log_file = (self.location / "azurite.log").open("ab")
        self.process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        log_file.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_open(self.port):
                log.info("Azurite blob service on %s:%d (data in %s)", LOOPBACK, self.port, self.location)
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise BlobConfigError(
            f"Azurite did not start on {LOOPBACK}:{self.port} within {timeout:.0f} s; "
            f"see {self.location / 'azurite.log'}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
        log.info("stopped Azurite on port %d", self.port)

    def __enter__(self) -> AzuriteServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_STARTED: dict[int, AzuriteServer] = {}


def ensure_azurite(location: Path, port: int, root: Path | None = None) -> AzuriteServer | None:
    """Start Azurite on `port` unless something already listens there; stop it at exit.

    Returns the server we started, or None when one was already running (a fixture's,
    another process's): that one is left alone.
    """
    if port_open(port):
        return _STARTED.get(port)
    server = AzuriteServer(location, port, root=root).start()
    _STARTED[port] = server
    atexit.register(server.stop)
    return server

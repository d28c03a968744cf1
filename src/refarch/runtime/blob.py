"""Blob storage per target: Azurite on loopback locally, an Azure Storage account on Databricks.

Pipelines ask `blob_location(config)` for the target's location and never build a URL, a key
or a connection string. `BlobLocation` is small and picklable, so Spark tasks (one per shard of
many-model groups) open their own client on an executor. It carries the *name* of a Unity Catalog
service credential, never a token: each process asks Databricks for a provider itself, on the
driver through `dbutils.credentials.getServiceCredentialsProvider(name)`, inside a Spark task
(DBR >= 16.2) through `databricks.service_credentials.getServiceCredentialsProvider(name)`.
Off Databricks, a location with an account URL and no credential uses `DefaultAzureCredential`
(az login, environment, managed identity); locally Azurite and its public development key.

Every blob name is relative to `blob.prefix` of the target (`dev/<user>/` in dev), applied by
the container client itself so no caller can forget it.

On the local target Azurite (installed by `npm install` into `node_modules/`) is started on
loopback when nothing listens on its port yet, with its data under `<home>/azurite`, and stopped
when the process exits.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from refarch.runtime.config import Config

if TYPE_CHECKING:
    from azure.storage.blob import BlobProperties, BlobServiceClient, ContainerClient, StorageStreamDownloader

log = logging.getLogger(__name__)

# The documented, public Azurite development account (not a secret: it only works against Azurite).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_PORT_ENV = "REFARCH_AZURITE_PORT"
LOOPBACK = "127.0.0.1"


class BlobConfigError(RuntimeError):
    """The blob settings of the target cannot give a client (missing env var, no Azurite, no credential)."""


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


# ---- credentials ---------------------------------------------------------------------


def in_spark_task() -> bool:
    """True inside a Spark task's Python worker (a UDF, `mapInPandas`, `applyInPandas`), False on the driver."""
    try:
        from pyspark import TaskContext
    except ImportError:  # a Python without Spark (Model Serving): never a task
        return False
    return TaskContext.get() is not None


def _driver_provider(name: str) -> Any:
    """`dbutils.credentials.getServiceCredentialsProvider` (Databricks driver: notebooks and jobs)."""
    from databricks.sdk.runtime import dbutils

    return dbutils.credentials.getServiceCredentialsProvider(name)


def _executor_provider(name: str) -> Any:
    """The UDF-side equivalent (Databricks Runtime >= 16.2); dbutils does not exist in a task."""
    from databricks.service_credentials import getServiceCredentialsProvider  # type: ignore[import-not-found]

    return getServiceCredentialsProvider(name)


def _default_credential() -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def choose_credential(
    name: str | None,
    *,
    in_task: bool,
    on_databricks: bool,
    driver: Callable[[str], Any] = _driver_provider,
    executor: Callable[[str], Any] = _executor_provider,
    default: Callable[[], Any] = _default_credential,
) -> Any:
    """The token credential for an account URL, by where the code runs.

    A configured service credential is asked for in the way the context allows (a Spark task
    cannot reach dbutils); `DefaultAzureCredential` is only the explicit fallback off Databricks
    when no credential is configured, because on a cluster it finds no identity.
    """
    if name:
        if in_task:
            return executor(name)
        if on_databricks:
            return driver(name)
        raise BlobConfigError(
            f"blob.credential '{name}' is a Unity Catalog service credential, usable on Databricks only; "
            "off Databricks leave it empty (DefaultAzureCredential: az login, environment, managed identity)"
        )
    if on_databricks:
        raise BlobConfigError(
            "blob.credential is not set: on Databricks the jobs reach the storage account through a Unity Catalog "
            "service credential (conf/<target>.yml blob.credential; see docs/DEPLOYING.md)"
        )
    return default()


# ---- locations and clients -------------------------------------------------------------


@dataclass(frozen=True)
class BlobLocation:
    """Where the target's blobs live, in a form that pickles to Spark executors (no secret in it
    but Azurite's public key).

    Exactly one of `connection_string` and `account_url` is set. With an account URL the client
    authenticates with the service credential named `credential` (see `choose_credential`).
    `prefix` (empty, or ending in "/") is put in front of every blob name.
    """

    container: str
    connection_string: str | None = None
    account_url: str | None = None
    credential: str | None = None
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.prefix and (not self.prefix.endswith("/") or self.prefix.startswith("/")):
            raise BlobConfigError(f"blob.prefix '{self.prefix}' must be empty or a relative folder ending in '/'")

    def service(self) -> BlobServiceClient:
        return _service_client(self.connection_string, self.account_url, self.credential)

    def container_client(self) -> BlobContainer:
        return BlobContainer(self.service().get_container_client(self.container), self.prefix)

    def name(self, blob: str) -> str:
        """The blob's full name in the container (with the prefix)."""
        return self.prefix + blob

    def url(self, name: str) -> str:
        """A readable address of a blob for logs and manifests."""
        if self.account_url:
            return f"{self.account_url.rstrip('/')}/{self.container}/{self.name(name)}"
        return f"azurite://{self.container}/{self.name(name)}"

    def abfss_url(self, folder: str) -> str:
        """`abfss://<container>@<account>.dfs.core.windows.net/<prefix><folder>`: the folder as Spark reads
        it through a Unity Catalog external location (ADLS Gen2)."""
        if not self.account_url:
            raise BlobConfigError("an abfss:// URL needs blob.account_url (a storage account, not Azurite)")
        host = urlparse(self.account_url).netloc.replace(".blob.", ".dfs.")
        return f"abfss://{self.container}@{host}/{self.name(folder.strip('/'))}"


class BlobContainer:
    """A `ContainerClient` whose blob names are relative to the location's prefix.

    Only the calls the pipelines make are offered, each with the prefix applied (names listed come
    back without it), so nothing can reach a blob outside the prefix by forgetting to add it.
    """

    def __init__(self, client: ContainerClient, prefix: str = "") -> None:
        self.client, self.prefix = client, prefix

    @property
    def container_name(self) -> str:
        return self.client.container_name

    def create_container(self, **kwargs: Any) -> Any:
        return self.client.create_container(**kwargs)

    def exists(self) -> bool:
        return bool(self.client.exists())

    def upload_blob(self, name: str, data: Any, **kwargs: Any) -> Any:
        return self.client.upload_blob(self.prefix + name, data, **kwargs)

    def download_blob(
        self, name: str, offset: int | None = None, length: int | None = None, **kwargs: Any
    ) -> StorageStreamDownloader:
        return self.client.download_blob(self.prefix + name, offset=offset, length=length, **kwargs)

    def delete_blob(self, name: str, **kwargs: Any) -> None:
        self.client.delete_blob(self.prefix + name, **kwargs)

    def list_blob_names(self, name_starts_with: str = "", **kwargs: Any) -> Iterator[str]:
        cut = len(self.prefix)
        for name in self.client.list_blob_names(name_starts_with=self.prefix + name_starts_with, **kwargs):
            yield name[cut:]

    def list_blobs(self, name_starts_with: str = "", **kwargs: Any) -> Iterator[BlobProperties]:
        """Properties as the SDK gives them, `name` relative to the prefix."""
        cut = len(self.prefix)
        for props in self.client.list_blobs(name_starts_with=self.prefix + name_starts_with, **kwargs):
            props.name = props.name[cut:]
            yield props


_CLIENTS: dict[tuple[str | None, str | None, str | None, bool], BlobServiceClient] = {}


def _service_client(
    connection_string: str | None, account_url: str | None, credential: str | None
) -> BlobServiceClient:
    """One client per process, location and context: it keeps the HTTP connection pool warm across groups."""
    in_task = in_spark_task()
    key = (connection_string, account_url, credential, in_task)
    client = _CLIENTS.get(key)
    if client is None:
        from azure.storage.blob import BlobServiceClient

        from refarch.runtime.workspace import on_databricks

        if connection_string:
            client = BlobServiceClient.from_connection_string(connection_string)
        elif account_url:
            token = choose_credential(credential, in_task=in_task, on_databricks=on_databricks())
            client = BlobServiceClient(account_url, credential=token)
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
        return BlobLocation(b.container, connection_string=value, prefix=b.prefix)
    if b.kind == "azurite":
        port = azurite_port(config)
        if start:
            ensure_azurite(config.home / "azurite", port, root=config.root)
        return BlobLocation(b.container, connection_string=azurite_connection_string(port), prefix=b.prefix)
    if not b.account_url:
        raise BlobConfigError(f"conf/{config.target.name}.yml: blob.kind is 'account' but blob.account_url is not set")
    return BlobLocation(b.container, account_url=b.account_url, credential=b.credential or None, prefix=b.prefix)


def container_client(config: Config, create: bool = True) -> BlobContainer:
    """The target's container (names relative to its prefix), created on first use."""
    client = blob_location(config).container_client()
    if create:
        ensure_container(client)
    return client


def ensure_container(client: BlobContainer) -> None:
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

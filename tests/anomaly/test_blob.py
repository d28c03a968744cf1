"""Blob storage per target: Azurite on loopback locally, clear errors for incomplete settings."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from refarch.runtime.blob import (
    AzuriteServer,
    BlobConfigError,
    BlobLocation,
    blob_location,
    container_client,
    ensure_azurite,
    free_port,
    port_open,
)
from refarch.runtime.config import BlobConf


def _with_blob(config, **blob):
    target = config.target.model_copy(update={"blob": BlobConf(**blob)})
    return config.model_copy(update={"target": target})


def test_the_local_target_talks_to_azurite(config, azurite):
    client = container_client(config)  # the fixture's port via $REFARCH_AZURITE_PORT
    assert client.container_name == "refarch"
    client.upload_blob("tests/hello.txt", b"hello", overwrite=True)
    assert client.download_blob("tests/hello.txt").readall() == b"hello"
    assert f"127.0.0.1:{azurite.port}" in blob_location(config).connection_string


def test_a_location_pickles_for_spark_tasks(location):
    copy = pickle.loads(pickle.dumps(location))
    copy.container_client().upload_blob("x.bin", b"\x00\x01", overwrite=True)
    assert location.container_client().download_blob("x.bin").readall() == b"\x00\x01"
    assert location.url("x.bin") == f"azurite://{location.container}/x.bin"


def test_ensure_azurite_leaves_a_running_server_alone(azurite, tmp_path: Path):
    assert ensure_azurite(tmp_path, azurite.port) is None
    assert port_open(azurite.port)


def test_azurite_starts_and_stops(tmp_path: Path):
    root = Path(__file__).resolve().parents[2]
    with AzuriteServer(tmp_path / "az", free_port(), root=root) as server:
        assert port_open(server.port)
        BlobLocation("own", connection_string=server.connection_string).container_client().create_container()
        port = server.port
    assert not port_open(port)
    assert (tmp_path / "az" / "azurite.log").is_file()


def test_incomplete_account_settings_are_named(config, monkeypatch):
    with pytest.raises(BlobConfigError, match=r"blob.account_url is not set"):
        blob_location(_with_blob(config, kind="account"))
    monkeypatch.delenv("REFARCH_TEST_BLOB_CS", raising=False)
    with pytest.raises(BlobConfigError, match=r"\$REFARCH_TEST_BLOB_CS, which is not set"):
        blob_location(_with_blob(config, kind="account", connection_string_env="REFARCH_TEST_BLOB_CS"))
    monkeypatch.setenv("REFARCH_TEST_BLOB_CS", "UseDevelopmentStorage=true")
    loc = blob_location(_with_blob(config, kind="account", connection_string_env="REFARCH_TEST_BLOB_CS"))
    assert loc.connection_string == "UseDevelopmentStorage=true"
    acct = blob_location(_with_blob(config, kind="account", account_url="https://acct.blob.core.windows.net"))
    assert acct.url("a/b") == "https://acct.blob.core.windows.net/refarch/a/b"

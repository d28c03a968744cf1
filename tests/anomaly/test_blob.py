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


# ---- credentials: the name travels, each process asks for its own provider ----------------------


def _stand_ins(calls: list):
    return {
        "driver": lambda name: calls.append(("driver", name)) or f"driver:{name}",
        "executor": lambda name: calls.append(("executor", name)) or f"executor:{name}",
        "default": lambda: calls.append(("default", None)) or "default",
    }


@pytest.mark.parametrize(
    ("name", "in_task", "on_databricks", "expected"),
    [
        ("refarch-storage", False, True, ("driver", "refarch-storage")),  # notebook / job driver: dbutils
        (
            "refarch-storage",
            True,
            True,
            ("executor", "refarch-storage"),
        ),  # inside a UDF: databricks.service_credentials
        (None, False, False, ("default", None)),  # off Databricks without a credential: DefaultAzureCredential
        (None, True, False, ("default", None)),
    ],
)
def test_the_credential_provider_is_chosen_by_where_the_code_runs(name, in_task, on_databricks, expected):
    from refarch.runtime.blob import choose_credential

    calls: list = []
    got = choose_credential(name, in_task=in_task, on_databricks=on_databricks, **_stand_ins(calls))
    assert calls == [expected]
    assert got == (f"{expected[0]}:{name}" if name else "default")


def test_no_silent_fallback_on_databricks_and_no_service_credential_elsewhere():
    from refarch.runtime.blob import choose_credential

    calls: list = []
    with pytest.raises(BlobConfigError, match=r"blob.credential is not set: on Databricks .*service credential"):
        choose_credential(None, in_task=False, on_databricks=True, **_stand_ins(calls))
    with pytest.raises(BlobConfigError, match=r"usable on Databricks only"):
        choose_credential("refarch-storage", in_task=False, on_databricks=False, **_stand_ins(calls))
    assert calls == []  # DefaultAzureCredential is never the quiet fallback


def test_a_spark_task_knows_it_is_one(spark):
    import pandas as pd

    from refarch.runtime.blob import in_spark_task

    def probe(batches):
        for _ in batches:
            pass
        yield pd.DataFrame({"in_task": [in_spark_task()]})

    assert not in_spark_task()
    assert spark.range(1).mapInPandas(probe, "in_task boolean").first()["in_task"] is True


def test_the_location_carries_the_credential_name_and_prefix_never_a_token(config):
    target = _with_blob(
        config,
        kind="account",
        account_url="https://acct.blob.core.windows.net",
        credential="refarch-storage",
        prefix="dev/me/",
    )
    loc = blob_location(target)
    assert (loc.credential, loc.prefix, loc.connection_string) == ("refarch-storage", "dev/me/", None)
    data = pickle.dumps(loc)
    assert pickle.loads(data) == loc
    assert b"refarch-storage" in data and len(data) < 400  # a name and a URL, nothing else
    assert loc.url("models/x.bin") == "https://acct.blob.core.windows.net/refarch/dev/me/models/x.bin"
    assert loc.abfss_url("raw/readings") == "abfss://refarch@acct.dfs.core.windows.net/dev/me/raw/readings"
    with pytest.raises(BlobConfigError, match="must be empty or a relative folder ending in '/'"):
        BlobLocation("c", account_url="https://a.blob.core.windows.net", prefix="dev/me")


def test_every_blob_name_lies_under_the_prefix(azurite):
    import uuid

    from refarch.runtime.blob import ensure_container

    name = f"t{uuid.uuid4().hex[:12]}"
    mine = BlobLocation(name, connection_string=azurite.connection_string, prefix="dev/me/")
    whole = BlobLocation(name, connection_string=azurite.connection_string)
    container = mine.container_client()
    ensure_container(container)
    container.upload_blob("raw/a.csv", b"a")
    container.upload_blob("models/v/shard-00000.bin", b"0123456789")
    whole.container_client().upload_blob("dev/other/raw/b.csv", b"b")  # another user's
    assert sorted(whole.container_client().list_blob_names()) == [
        "dev/me/models/v/shard-00000.bin",
        "dev/me/raw/a.csv",
        "dev/other/raw/b.csv",
    ]
    assert sorted(container.list_blob_names()) == ["models/v/shard-00000.bin", "raw/a.csv"]
    assert [(b.name, b.size) for b in container.list_blobs(name_starts_with="raw/")] == [("raw/a.csv", 1)]
    assert container.download_blob("models/v/shard-00000.bin", offset=2, length=3).readall() == b"234"
    container.delete_blob("raw/a.csv")
    assert sorted(whole.container_client().list_blob_names()) == [
        "dev/me/models/v/shard-00000.bin",
        "dev/other/raw/b.csv",
    ]

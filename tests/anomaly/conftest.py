"""An Azurite blob service of our own on a free loopback port for the anomaly tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from refarch.runtime.blob import AZURITE_PORT_ENV, AzuriteServer, BlobLocation, ensure_container, free_port


@pytest.fixture(scope="session")
def azurite(refarch_home: Path) -> Iterator[AzuriteServer]:
    """Started once for the session; the local target's blob settings point at it via the env var."""
    server = AzuriteServer(refarch_home / "azurite-tests", free_port(), root=Path(__file__).resolve().parents[2])
    saved = os.environ.get(AZURITE_PORT_ENV)
    with server:
        os.environ[AZURITE_PORT_ENV] = str(server.port)
        yield server
    if saved is None:
        os.environ.pop(AZURITE_PORT_ENV, None)
    else:
        os.environ[AZURITE_PORT_ENV] = saved


@pytest.fixture
def location(azurite: AzuriteServer) -> BlobLocation:
    """A fresh container per test, so tests never see each other's blobs."""
    loc = BlobLocation(f"t{uuid.uuid4().hex[:12]}", connection_string=azurite.connection_string)
    ensure_container(loc.container_client())
    return loc


@pytest.fixture(scope="session")
def conf_settings(refarch_home: Path):
    """conf/anomaly.yml for the local target, as the notebooks get it."""
    from refarch.anomaly.settings import Settings
    from refarch.runtime.config import load_config

    return load_config("anomaly", "local").settings(Settings)


@pytest.fixture
def settings(conf_settings, tmp_path: Path):
    """The conf's settings with this test's own tables, landing folder and checkpoint."""
    from refarch.anomaly.settings import TableNames

    tag = f"anomaly_t{uuid.uuid4().hex[:8]}"
    ingest = conf_settings.ingest.model_copy(
        update={"landing_dir": str(tmp_path / "landing"), "checkpoint_dir": str(tmp_path / "checkpoints")}
    )
    names = TableNames(**{f: f"{tag}_{f}" for f in TableNames.model_fields})
    return conf_settings.model_copy(update={"tables": names, "ingest": ingest})

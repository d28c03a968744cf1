"""Landing in Blob storage and incremental ingest: each file once, bad rows quarantined with a reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from refarch.anomaly.ingest import ingest_readings
from refarch.anomaly.landing import land_generated, land_readings, mirror_new_blobs, newest_landed_hour
from refarch.datasets.sensors import SensorSpec, read_readings

SPEC = SensorSpec(devices=2, sensors=1, step_seconds=60, anomaly_rate=0.0, seed=42)  # 120 readings per hour
HOUR = dt.datetime(2026, 1, 1, 0)
BAD = (
    b"TS,Device,Sensor,Value\n"
    b"2026-01-01T00:00:00,dev-001,temperature,abc\n"  # bad value
    b"yesterday,dev-001,temperature,1.0\n"  # bad timestamp
    b"2026-01-01T00:00:00,../etc,temperature,1.0\n"  # device id unsafe in a blob path
    b"2026-01-01T00:30:00,dev-002,temperature,61.5\n"  # good
)


def _ingest(tables, settings, location, run_id):
    return ingest_readings(tables, settings, location, run_id)  # mirrors the new blobs first (mode: mirror)


def test_each_landed_file_is_read_exactly_once(tables, settings, location):
    container = location.container_client()
    land_generated(container, SPEC, HOUR, 1, settings.blob.raw_prefix, settings.blob.labels_prefix)
    container.upload_blob(f"{settings.blob.raw_prefix}/upload/bad/part-00000.csv", BAD)

    first = _ingest(tables, settings, location, "ingest-1")
    assert (first.files, first.good, first.bad) == (2, 121, 3)
    assert first.bad_by_reason == {"bad_value": 1, "bad_timestamp": 1, "bad_device": 1}

    again = _ingest(tables, settings, location, "ingest-2")  # nothing new landed
    assert (again.files, again.good, again.bad) == (0, 0, 0)

    land_generated(
        container, SPEC, HOUR + dt.timedelta(hours=1), 1, settings.blob.raw_prefix, settings.blob.labels_prefix
    )
    third = _ingest(tables, settings, location, "ingest-3")
    assert (third.files, third.good, third.bad) == (1, 120, 0)

    readings = tables.read(settings.tables.readings)
    assert readings.count() == 241
    assert readings.select("TS", "Device", "Sensor").distinct().count() == 240  # one reading came twice
    assert readings.filter("Device = 'dev-002' AND TS = '2026-01-01 00:30:00'").count() == 2  # file + generated
    quarantine = {(r.TS, r.Device, r.reason) for r in tables.read(settings.tables.quarantine).collect()}
    assert quarantine == {
        ("2026-01-01T00:00:00", "dev-001", "bad_value"),
        ("yesterday", "dev-001", "bad_timestamp"),
        ("2026-01-01T00:00:00", "../etc", "bad_device"),
    }
    log = tables.read(settings.tables.run_log)
    bad_rows = {(r.device, r.rows, r.message) for r in log.filter("status = 'bad_readings'").collect()}
    assert bad_rows == {
        ("dev-001", 2, "unreadable readings quarantined: bad_timestamp,bad_value"),
        ("../etc", 1, "unreadable readings quarantined: bad_device"),
    }
    summaries = log.filter("device IS NULL").orderBy("run_id").collect()
    assert [(r.run_id, r.rows) for r in summaries] == [("ingest-1", 121), ("ingest-2", 0), ("ingest-3", 120)]


def test_too_many_bad_rows_fail_the_run_but_are_kept(tables, settings, location):
    container = location.container_client()
    container.upload_blob(f"{settings.blob.raw_prefix}/upload/bad/part-00000.csv", BAD)
    with pytest.raises(RuntimeError, match=r"3 of 4 rows \(75.0%\) are unreadable, above the limit of 5.0%"):
        _ingest(tables, settings, location, "ingest-bad")
    assert tables.read(settings.tables.quarantine).count() == 3
    assert not tables.exists(settings.tables.readings)


def test_landing_a_users_file_and_finding_the_newest_hour(location, tmp_path: Path):
    container = location.container_client()
    assert newest_landed_hour(container, "raw/readings") is None
    land_generated(container, SPEC, HOUR, 3, "raw/readings", "raw/labels")
    assert newest_landed_hour(container, "raw/readings") == HOUR + dt.timedelta(hours=2)

    path = tmp_path / "sensor_data.csv"
    path.write_text("Timestamp,Device,Tag,Value\n" + "".join(f"2026-01-01 00:00:{i:02d},D1,T1,{i}\n" for i in range(5)))
    landed = land_readings(container, read_readings(path), "raw/readings", "my data.csv", rows_per_file=2)
    assert landed.blobs == [f"raw/readings/upload/my_data.csv/part-{i:05d}.csv" for i in range(3)]
    text = container.download_blob(landed.blobs[0]).readall().decode()
    assert text.splitlines() == ["TS,Device,Sensor,Value", "2026-01-01 00:00:00,D1,T1,0", "2026-01-01 00:00:01,D1,T1,1"]
    mirrored = mirror_new_blobs(container, "raw/readings", tmp_path / "landing")
    assert len(mirrored) == 6
    assert mirror_new_blobs(container, "raw/readings", tmp_path / "landing") == []


def test_on_databricks_auto_loader_reads_the_container_through_the_external_location(settings):
    from refarch.anomaly.ingest import stream_source
    from refarch.runtime.blob import BlobLocation

    auto = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"mode": "autoloader"})})
    loc = BlobLocation("refarch", account_url="https://acct.blob.core.windows.net", credential="refarch-storage")
    fmt, options, path = stream_source(auto, loc)
    assert (fmt, path) == ("cloudFiles", "abfss://refarch@acct.dfs.core.windows.net/raw/readings")
    assert options["cloudFiles.format"] == "csv" and options["header"] == "true"
    mine = BlobLocation("refarch", account_url="https://acct.blob.core.windows.net", prefix="dev/me/")
    assert stream_source(auto, mine)[2] == "abfss://refarch@acct.dfs.core.windows.net/dev/me/raw/readings"
    with pytest.raises(ValueError, match=r"ingest.mode autoloader: an abfss:// URL needs blob\.account_url"):
        stream_source(auto, BlobLocation("refarch", connection_string="UseDevelopmentStorage=true"))
    fmt, _, path = stream_source(settings, loc)
    assert (fmt, path) == ("csv", settings.ingest.landing_dir)


@pytest.mark.parametrize("target", ["local", "dev", "staging", "prod"])
def test_landing_and_checkpoints_follow_the_targets_paths(target):
    from refarch.anomaly.settings import Settings
    from refarch.runtime.config import load_config

    config = load_config("anomaly", target, root=Path(__file__).resolve().parents[2])
    ingest = config.settings(Settings).ingest
    paths = config.target.paths
    assert ingest.checkpoint_dir == f"{paths.checkpoints}/anomaly/ingest"
    assert ingest.landing_dir == f"{paths.scratch}/anomaly/landing"
    assert ingest.mode == ("mirror" if target == "local" else "autoloader")

"""Raw files in Blob storage: land readings there (generated, or a user's file), and mirror new ones.

Readings land as CSV blobs `<raw_prefix>/<date>/<hour>/readings.csv` (generated hours) or
`<raw_prefix>/upload/<name>/part-NNNNN.csv` (a file someone already has). Ingest streams
them: on Databricks Auto Loader reads the container; locally Spark cannot read wasbs/abfss,
so `mirror_new_blobs` copies blobs not yet mirrored into a landing folder that Structured
Streaming reads with a checkpoint — a re-run never reads a file twice and never skips one.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from refarch.anomaly.settings import BlobPrefixes, GeneratorSettings, LandSettings
from refarch.datasets.sensors import LABEL_COLUMNS, SensorSpec, generate_hour, load_readings, to_csv_bytes

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

_HOUR_PATH = re.compile(r"(\d{4}-\d{2}-\d{2})/(\d{2})/")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Landed:
    """What one landing call wrote."""

    blobs: list[str]
    readings: int
    labels: pd.DataFrame

    @classmethod
    def nothing(cls) -> Landed:
        return cls([], 0, pd.DataFrame(columns=list(LABEL_COLUMNS)))


def sensor_spec(generator: GeneratorSettings) -> SensorSpec:
    """What the generator simulates, from conf (job parameters have already overridden it)."""
    return SensorSpec(
        generator.devices, generator.sensors, generator.step_seconds, generator.anomaly_rate, generator.seed
    )


def land(
    container: ContainerClient,
    settings: LandSettings,
    generator: GeneratorSettings,
    blob: BlobPrefixes,
    cache_dir: Path,
    start: dt.datetime | None,
) -> Landed:
    """Put raw readings into Blob storage: generated hours (with their labels), a given file, or none.

    Generated data continues after the newest landed hour when `start` is None (from
    `generator.first_hour` when nothing has landed), so each scheduled run adds the next
    hour as if devices had sent it.
    """
    if settings.source == "none":  # devices land their own files; nothing to add
        return Landed.nothing()
    if settings.source != "generated":
        df = load_readings(settings.source, cache_dir, sha256=settings.sha256)
        return land_readings(container, df, blob.raw_prefix, Path(settings.source).name)
    if start is None:
        newest = newest_landed_hour(container, blob.raw_prefix)
        start = generator.first_hour if newest is None else newest + dt.timedelta(hours=1)
    return land_generated(
        container, sensor_spec(generator), start, generator.hours, blob.raw_prefix, blob.labels_prefix
    )


def write_labels(tables: Tables, table: str, labels: pd.DataFrame) -> None:
    """The injected anomalies into the labels table, replacing the hours they start in."""
    from pyspark.sql import functions as F

    df = tables.spark.createDataFrame(labels).select(
        "Device", "Sensor", "kind", F.col("start").cast("timestamp"), F.col("end").cast("timestamp")
    )
    df = df.withColumn("date", F.to_date("start")).withColumn("hour", F.hour("start"))
    tables.overwrite_partitions(df, table, ["date", "hour"])


def hour_blob(prefix: str, hour: dt.datetime, name: str) -> str:
    return f"{prefix.rstrip('/')}/{hour:%Y-%m-%d}/{hour:%H}/{name}"


def land_generated(
    container: ContainerClient,
    spec: SensorSpec,
    start: dt.datetime,
    hours: int,
    raw_prefix: str,
    labels_prefix: str,
) -> Landed:
    """Generate `hours` hours from `start` and upload one readings CSV (and one labels CSV) per hour.

    Blob names depend only on the hour, so landing the same hours again replaces, not duplicates.
    """
    blobs, count, labels = [], 0, []
    for h in range(hours):
        hour = start.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=h)
        readings, hour_labels = generate_hour(spec, hour)
        name = hour_blob(raw_prefix, hour, "readings.csv")
        container.upload_blob(name, to_csv_bytes(readings), overwrite=True)
        container.upload_blob(
            hour_blob(labels_prefix, hour, "labels.csv"),
            to_csv_bytes(hour_labels, hour_labels.columns),
            overwrite=True,
        )
        blobs.append(name)
        count += len(readings)
        labels.append(hour_labels)
    log.info("landed %d readings in %d blobs under %s", count, len(blobs), raw_prefix)
    return Landed(blobs, count, pd.concat(labels, ignore_index=True))


def land_readings(
    container: ContainerClient,
    readings: pd.DataFrame,
    raw_prefix: str,
    name: str,
    rows_per_file: int = 500_000,
) -> Landed:
    """Upload readings someone already has (see `datasets.sensors.load_readings`) as CSV parts."""
    safe = _SAFE_NAME.sub("_", name).strip("_") or "upload"
    blobs = []
    for i, first in enumerate(range(0, max(len(readings), 1), rows_per_file)):
        part = readings.iloc[first : first + rows_per_file]
        blob = f"{raw_prefix.rstrip('/')}/upload/{safe}/part-{i:05d}.csv"
        container.upload_blob(blob, to_csv_bytes(part), overwrite=True)
        blobs.append(blob)
    log.info("landed %d readings from %s in %d blobs", len(readings), name, len(blobs))
    return Landed(blobs, len(readings), Landed.nothing().labels)


def newest_landed_hour(container: ContainerClient, raw_prefix: str) -> dt.datetime | None:
    """The latest `<date>/<hour>` folder under the raw prefix, or None when nothing landed yet."""
    newest = None
    for name in container.list_blob_names(name_starts_with=raw_prefix.rstrip("/") + "/"):
        m = _HOUR_PATH.search(name)
        if m:
            hour = dt.datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}:00:00")
            newest = hour if newest is None or hour > newest else newest
    return newest


def mirror_new_blobs(container: ContainerClient, raw_prefix: str, landing_dir: Path) -> list[Path]:
    """Download blobs under `raw_prefix` that are not in `landing_dir` yet (same relative path).

    Each file is written under a hidden temporary name and renamed, so the streaming
    source never sees half a file. A blob already mirrored is not downloaded again.
    """
    prefix = raw_prefix.rstrip("/") + "/"
    landing_dir.mkdir(parents=True, exist_ok=True)
    new: list[Path] = []
    for blob in container.list_blobs(name_starts_with=prefix):
        rel = blob.name[len(prefix) :]
        if not rel or rel.endswith("/") or ".." in rel.split("/"):
            continue
        target = landing_dir / rel
        if target.is_file() and target.stat().st_size == blob.size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        with tmp.open("wb") as fh:
            container.download_blob(blob.name).readinto(fh)
        os.replace(tmp, target)
        new.append(target)
    log.info("mirrored %d new blob(s) from %s to %s", len(new), prefix, landing_dir)
    return new

"""Train one detector per (device, sensor), many groups per Spark task, one blob per task.

The intervals are hash-partitioned by (device, sensor) into `model.shards` partitions, and
`mapInPandas` hands each task its whole partition as Arrow batches: no Python call, pandas frame
or Arrow batch per group, and one upload per shard (see `shards`) instead of one per model.
Inside a task the groups are found by sorting and fitted one after the other (`fit_many`), then
packed and uploaded.

A group that cannot train (too few usable — finite — intervals, a fit error) gets a status row
and the others go on; a group's `seconds` is its share (by rows) of its shard's fitting time. A
failed upload fails every group of its shard. `train_model_set` writes every group's status to
the run log, names each failure in the log, and fails the task when the share of failed groups
passes `model.max_failed_share`; otherwise the groups that trained are registered as one model
set (see `registry`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from refarch.anomaly.detectors import feature_matrix, fit_many
from refarch.anomaly.evaluate import Quality, record_quality
from refarch.anomaly.runlog import append_run_log, summary_rows, to_run_log
from refarch.anomaly.score import score_intervals
from refarch.anomaly.settings import ModelSettings, Settings
from refarch.anomaly.shards import pack, shard_blob
from refarch.runtime.blob import BlobLocation

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

TRAIN_SCHEMA = (
    "device string, sensor string, status string, rows long, seconds double, model_version string, "
    "message string, blob string, shard int, slot int, offset long, length long, "
    "bank_offset long, bank_length long, shard_fit_seconds double, shard_pack_seconds double, "
    "shard_upload_seconds double, shard_seconds double"
)
TRAIN_COLUMNS = [c.strip().split(" ")[0] for c in TRAIN_SCHEMA.split(",")]


class TooManyFailedGroups(RuntimeError):
    """More groups failed to train or upload than `model.max_failed_share` allows."""


def new_model_version() -> str:
    """`<UTC time>-<6 hex>`: sorts by time, unique across concurrent runs."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def group_bounds(pdf: pd.DataFrame) -> list[tuple[int, int]]:
    """[start, end) of each (device, sensor) run in a frame sorted by device and sensor."""
    if pdf.empty:
        return []
    device, sensor = pdf["device"].to_numpy(), pdf["sensor"].to_numpy()
    cuts = np.flatnonzero((device[1:] != device[:-1]) | (sensor[1:] != sensor[:-1])) + 1
    edges = [0, *cuts.tolist(), len(pdf)]
    return list(itertools.pairwise(edges))


def train_shard(
    pdf: pd.DataFrame, location: BlobLocation, settings: ModelSettings, prefix: str, version: str, shard: int
) -> pd.DataFrame:
    """Fit every group of one shard, upload them as one blob; one status row per group."""
    started = time.perf_counter()
    pdf = pdf.sort_values(["device", "sensor", "interval_start"], kind="stable", ignore_index=True)
    x_all = feature_matrix(pdf, settings.features)
    usable = np.isfinite(x_all).all(axis=1)
    bounds = group_bounds(pdf)
    usable_count = np.array([int(usable[first:last].sum()) for first, last in bounds], dtype=np.int64)
    enough = usable_count >= settings.min_intervals
    # the usable rows of the groups that train, back to back: group k is x[starts[k]:starts[k + 1]]
    keep = usable & np.repeat(enough, [last - first for first, last in bounds])
    starts = np.concatenate([[0], np.cumsum(usable_count[enough])]).astype(np.int64)
    fitted = iter(fit_many(x_all[keep], starts, settings))
    blob = shard_blob(prefix, version, shard)
    rows: list[dict] = []
    models = []
    for (first, last), n_usable, trains in zip(bounds, usable_count, enough, strict=True):
        row = {
            "device": str(pdf["device"].iat[first]),
            "sensor": str(pdf["sensor"].iat[first]),
            "status": "ok",
            "rows": last - first,
            "message": "",
        }
        if not trains:
            row.update(
                status="too_few_intervals",
                message=f"{n_usable} usable interval(s), at least {settings.min_intervals} needed",
            )
        else:
            model = next(fitted)
            if isinstance(model, Exception):  # one group's failure must not fail the others
                row.update(status="failed", message=f"fit: {type(model).__name__}: {model}"[:500])
            else:
                models.append(model)
                row["slot"] = len(models) - 1
        rows.append(row)
    fit_seconds = time.perf_counter() - started
    pack_seconds = upload_seconds = 0.0
    packed = None
    if models:
        t = time.perf_counter()
        packed = pack(models)
        pack_seconds = time.perf_counter() - t
        t = time.perf_counter()
        try:
            location.container_client().upload_blob(blob, packed.data, overwrite=True)
        except Exception as err:  # every model of the shard is lost: each group says so
            message = f"upload of {location.url(blob)} failed: {type(err).__name__}: {err}"[:500]
            for row in rows:
                if row["status"] == "ok":
                    row.update(status="failed", message=message)
                    row.pop("slot", None)
            packed = None
        upload_seconds = time.perf_counter() - t
    out = pd.DataFrame(rows)
    ok = out["status"] == "ok"
    out["seconds"] = fit_seconds * out["rows"] / max(int(out["rows"].sum()), 1)  # its share of the shard's fit

    def only_ok(value: object, dtype: str = "Int64") -> pd.Series:
        column = pd.Series(value, index=out.index, dtype=dtype)
        return column.where(ok, None) if dtype == "object" else column.where(ok)

    slot = out["slot"].fillna(0).astype(int).to_numpy() if "slot" in out else np.zeros(len(out), dtype=int)
    out["slot"] = only_ok(slot, "Int32")
    out["model_version"] = only_ok(version, "object")
    out["blob"] = only_ok(blob, "object")
    out["shard"] = shard  # the shard the group was in, whatever its status
    offsets = np.asarray(packed.offsets if packed else [0])
    lengths = np.asarray(packed.lengths if packed else [0])
    bank = packed.bank if packed and packed.bank else (None, None)
    out["offset"] = only_ok(offsets[slot] if packed else None)
    out["length"] = only_ok(lengths[slot] if packed else None)
    out["bank_offset"] = only_ok(bank[0])
    out["bank_length"] = only_ok(bank[1])
    out["shard_fit_seconds"] = fit_seconds
    out["shard_pack_seconds"] = pack_seconds
    out["shard_upload_seconds"] = upload_seconds
    out["shard_seconds"] = time.perf_counter() - started
    return out.loc[:, TRAIN_COLUMNS]


def train_models(
    intervals: DataFrame, location: BlobLocation, settings: ModelSettings, prefix: str, version: str
) -> DataFrame:
    """One status row per (device, sensor): trained models are in Blob storage when this is computed.

    Partition i of `repartition(shards, device, sensor)` holds exactly the groups with
    `pmod(hash(device, sensor), shards) = i` (Spark's hash partitioning), which is the shard number
    written beside each group; a task that ever got two shards would write two blobs.
    """
    from pyspark.sql import functions as F

    shards = settings.shards
    columns = ["device", "sensor", "interval_start", *settings.features]
    by_shard = (
        intervals.select(*columns)
        .withColumn("_shard", F.expr(f"pmod(hash(device, sensor), {int(shards)})"))
        .repartition(shards, "device", "sensor")
    )

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        frames = [b for b in batches if len(b)]
        if not frames:
            return
        pdf = pd.concat(frames, ignore_index=True)
        for shard, part in pdf.groupby("_shard", sort=True):
            yield train_shard(part, location, settings, prefix, version, int(shard))

    return by_shard.mapInPandas(run, TRAIN_SCHEMA)


def check_failures(groups: pd.DataFrame, max_failed_share: float) -> None:
    """Log every failed group; raise when their share of all groups passes the limit."""
    failed = groups[groups["status"] == "failed"]
    for r in failed.itertuples(index=False):
        log.error("group %s / %s failed: %s", r.device, r.sensor, r.message)
    if len(groups) and len(failed) / len(groups) > max_failed_share:
        first = failed.iloc[0]
        raise TooManyFailedGroups(
            f"{len(failed)} of {len(groups)} group(s) ({len(failed) / len(groups):.1%}) failed to train, above "
            f"model.max_failed_share ({max_failed_share:.1%}); each is in the run log with its reason, "
            f"e.g. {first['device']} / {first['sensor']}: {first['message']}"
        )


@dataclass
class TrainResult:
    version: str
    registered_version: str | None
    groups: pd.DataFrame  # one status row per (device, sensor)
    seconds: float
    quality: Quality | None

    @property
    def trained(self) -> int:
        return int((self.groups["status"] == "ok").sum())

    @property
    def models_per_second(self) -> float:
        return len(self.groups) / self.seconds if self.seconds else 0.0


def train_model_set(
    tables: Tables,
    settings: Settings,
    intervals: DataFrame,
    location: BlobLocation,
    model_name: str,
    run_id: str,
) -> TrainResult:
    """Train every group, register the set (if any trained), log groups, parameters and in-sample quality.

    Runs inside an active MLflow run; `model_name` is the registered name for the target. Raises
    `TooManyFailedGroups` (after the run log has every group's status) when too many failed.
    """
    import mlflow

    from refarch.anomaly import registry  # MLflow: not on the path of the Spark workers that train groups

    model, seconds_per_interval = settings.model, settings.intervals.seconds
    version = new_model_version()
    started = time.perf_counter()
    groups = train_models(intervals, location, model, settings.blob.models_prefix, version).toPandas()
    seconds = time.perf_counter() - started
    spark = tables.spark
    log_rows = groups.loc[:, ["device", "sensor", "status", "rows", "seconds", "model_version", "message"]]
    append_run_log(
        tables,
        settings.tables.run_log,
        to_run_log(
            spark.createDataFrame(
                log_rows,
                "device string, sensor string, status string, rows long, "
                "seconds double, model_version string, message string",
            ),
            run_id,
            "train",
        ),
    )
    ok = int((groups["status"] == "ok").sum())
    failed = int((groups["status"] == "failed").sum())
    log.info("trained %d of %d group(s) in %.1f s (version %s)", ok, len(groups), seconds, version)
    mlflow.log_params(
        {
            "algorithm": model.algorithm,
            "features": ",".join(model.features),
            "interval_seconds": seconds_per_interval,
            "model_version": version,
            "shards": model.shards,
            **({"nu": model.ocsvm.nu, "gamma": model.ocsvm.gamma} if model.algorithm == "ocsvm" else {}),
            **({"contamination": model.iforest.contamination} if model.algorithm == "iforest" else {}),
        }
    )
    mlflow.log_metrics(
        {
            "groups": float(len(groups)),
            "models_trained": float(ok),
            "models_failed": float(failed),
            "train_seconds": seconds,
            "train_models_per_second": len(groups) / seconds if seconds else 0.0,
        }
    )
    summary = {
        "rows": len(groups),
        "seconds": seconds,
        "model_version": version,
    }
    try:
        check_failures(groups, model.max_failed_share)
    except TooManyFailedGroups as err:
        append_run_log(
            tables,
            settings.tables.run_log,
            summary_rows(spark, run_id, "train", [{**summary, "status": "failed", "message": str(err)[:500]}]),
        )
        raise
    registered, quality = None, None
    if ok:
        manifest = registry.build_manifest(
            groups, version, model.algorithm, model.features, seconds_per_interval, location.container, model.shards
        )
        location.container_client().upload_blob(
            f"{settings.blob.models_prefix}/manifests/{version}.json", manifest.to_json(), overwrite=True
        )
        with tempfile.TemporaryDirectory(prefix="anomaly-shards-") as tmp:
            shard_dir = registry.download_shards(manifest, location, Path(tmp))
            registered = registry.register_model_set(manifest, shard_dir, model_name, settings.registry.alias)
        in_sample = score_intervals(intervals, manifest.frame(spark), location, manifest.features, manifest.shard_count)
        try:
            quality = record_quality(
                tables, settings.tables, in_sample.predictions, version, seconds_per_interval, run_id, "train"
            )
        finally:
            in_sample.unpersist()
    summary.update(
        status="ok" if ok else "failed",
        message=f"{ok} of {len(groups)} model(s) trained ({failed} failed), registered version {registered}",
    )
    append_run_log(tables, settings.tables.run_log, summary_rows(spark, run_id, "train", [summary]))
    return TrainResult(version, registered, groups, seconds, quality)

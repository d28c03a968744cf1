"""The steps the anomaly notebooks call: land, ingest, intervals, train, score.

Each step takes the config, tables and settings, writes its tables and blobs, and
returns a small result for the notebook to show. Nothing here knows the target: blob
location, tables and ingest mode all come from conf/.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from refarch.anomaly import registry
from refarch.anomaly.evaluate import Quality, evaluate
from refarch.anomaly.ingest import IngestReport, ingest_readings
from refarch.anomaly.intervals import aggregate_intervals, newest_reading, readings_in_window, resolve_window
from refarch.anomaly.landing import Landed, land_generated, land_readings, mirror_new_blobs, newest_landed_hour
from refarch.anomaly.runlog import append_run_log, summary_rows, to_run_log
from refarch.anomaly.score import groups_without_intervals, score_intervals, upload_predictions
from refarch.anomaly.settings import AnomalySettings, ModelSettings
from refarch.anomaly.train import TRAIN_SCHEMA, new_model_version, train_models
from refarch.datasets.sensors import SensorSpec, load_readings
from refarch.runtime.blob import BlobLocation, blob_location, ensure_container
from refarch.runtime.config import Config
from refarch.runtime.tracking import registered_model_name

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

DEFAULT_START = dt.datetime(2026, 1, 1)


def location_for(config: Config) -> BlobLocation:
    """The target's blob location with its container created."""
    loc = blob_location(config)
    ensure_container(loc.container_client())
    return loc


# ---- land ----------------------------------------------------------------------------


def land(
    config: Config,
    tables: Tables,
    settings: AnomalySettings,
    source: str,
    spec: SensorSpec,
    start: dt.datetime | None,
    hours: int,
    sha256: str | None = None,
) -> Landed:
    """Put raw readings into Blob storage: generated hours (with their labels), a given file, or none.

    Generated data continues after the newest landed hour when `start` is None, so each
    scheduled run adds the next hour as if devices had sent it.
    """
    container = location_for(config).container_client()
    if source == "none":  # devices land their own files; nothing to add
        return Landed([], 0, pd.DataFrame(columns=["Device", "Sensor", "kind", "start", "end"]))
    if source != "generated":
        df = load_readings(source, config.home / "datasets", sha256=sha256 or None)
        return land_readings(container, df, settings.blob.raw_prefix, Path(source).name)
    if start is None:
        newest = newest_landed_hour(container, settings.blob.raw_prefix)
        start = DEFAULT_START if newest is None else newest + dt.timedelta(hours=1)
    landed = land_generated(container, spec, start, hours, settings.blob.raw_prefix, settings.blob.labels_prefix)
    if len(landed.labels):
        from pyspark.sql import functions as F

        labels = tables.spark.createDataFrame(landed.labels).select(
            "Device", "Sensor", "kind", F.col("start").cast("timestamp"), F.col("end").cast("timestamp")
        )
        labels = labels.withColumn("date", F.to_date("start")).withColumn("hour", F.hour("start"))
        tables.overwrite_partitions(labels, settings.tables.labels, ["date", "hour"])
    return landed


# ---- ingest --------------------------------------------------------------------------


def ingest(config: Config, tables: Tables, settings: AnomalySettings, run_id: str) -> IngestReport:
    """Read the raw files landed since the last run into the readings table."""
    loc = location_for(config)
    if settings.ingest.mode == "mirror":
        mirror_new_blobs(loc.container_client(), settings.blob.raw_prefix, Path(settings.ingest.landing_dir))
    return ingest_readings(tables, settings, loc, run_id)


# ---- intervals -----------------------------------------------------------------------


def window_for(
    tables: Tables, settings: AnomalySettings, window_end: dt.datetime | None, hours: int
) -> tuple[dt.datetime, dt.datetime]:
    newest = newest_reading(tables.read(settings.tables.readings)) if window_end is None else None
    return resolve_window(newest, window_end, hours)


def build_intervals(
    tables: Tables, settings: AnomalySettings, start: dt.datetime, end: dt.datetime, seconds: int
) -> DataFrame:
    """Aggregate [start, end) into the intervals table (replacing those hours) and return them."""
    from pyspark.sql import functions as F

    readings = readings_in_window(tables.read(settings.tables.readings), start, end)
    intervals = aggregate_intervals(readings, seconds)
    tables.overwrite_partitions(intervals, settings.tables.intervals, ["date", "hour"])
    return tables.read(settings.tables.intervals).filter(
        (F.col("interval_start") >= F.lit(start)) & (F.col("interval_start") < F.lit(end))
    )


# ---- train ---------------------------------------------------------------------------


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


def train(
    config: Config,
    tables: Tables,
    settings: AnomalySettings,
    model: ModelSettings,
    intervals: DataFrame,
    run_id: str,
    evaluate_in_sample: bool = True,
) -> TrainResult:
    """Train every group, register the model set (if any trained), log groups and quality."""
    import mlflow

    loc = location_for(config)
    version = new_model_version()
    started = time.perf_counter()
    groups = train_models(intervals, loc, model, settings.blob.models_prefix, version).toPandas()
    seconds = time.perf_counter() - started
    spark = tables.spark
    append_run_log(
        tables, settings.tables.run_log, to_run_log(spark.createDataFrame(groups, TRAIN_SCHEMA), run_id, "train")
    )
    ok = int((groups["status"] == "ok").sum())
    log.info("trained %d of %d group(s) in %.1f s (version %s)", ok, len(groups), seconds, version)
    mlflow.log_params(
        {
            "algorithm": model.algorithm,
            "features": ",".join(model.features),
            "interval_seconds": settings.intervals.seconds,
            "model_version": version,
            **({"nu": model.ocsvm.nu, "gamma": model.ocsvm.gamma} if model.algorithm == "ocsvm" else {}),
            **({"contamination": model.iforest.contamination} if model.algorithm == "iforest" else {}),
        }
    )
    mlflow.log_metrics(
        {
            "groups": float(len(groups)),
            "models_trained": float(ok),
            "models_failed": float(len(groups) - ok),
            "train_seconds": seconds,
            "train_models_per_second": len(groups) / seconds if seconds else 0.0,
        }
    )
    registered = None
    quality = None
    if ok:
        manifest = registry.build_manifest(
            groups, version, model.algorithm, model.features, settings.intervals.seconds, loc.container
        )
        loc.container_client().upload_blob(
            f"{settings.blob.models_prefix}/manifests/{version}.json", manifest.to_json(), overwrite=True
        )
        registered = registry.register_model_set(
            manifest, registered_model_name(config, "anomaly"), settings.registry.alias
        )
        if evaluate_in_sample:
            quality = _quality(tables, settings, intervals, manifest, loc, run_id, "train")
    summary = {
        "status": "ok" if ok else "failed",
        "rows": len(groups),
        "seconds": seconds,
        "model_version": version,
        "message": f"{ok} of {len(groups)} model(s) trained, registered version {registered}",
    }
    append_run_log(tables, settings.tables.run_log, summary_rows(spark, run_id, "train", [summary]))
    return TrainResult(version, registered, groups, seconds, quality)


def _quality(
    tables: Tables,
    settings: AnomalySettings,
    intervals: DataFrame,
    manifest: registry.Manifest,
    loc: BlobLocation,
    run_id: str,
    stage: str,
    predictions: DataFrame | None = None,
) -> Quality | None:
    """Precision/recall against the labels table (generated data only); logged to MLflow and a table."""
    import mlflow

    if not tables.exists(settings.tables.labels):
        log.info("no labels table: precision and recall are not computed (real data)")
        return None
    if predictions is None:
        scored = score_intervals(intervals, manifest.frame(tables.spark), loc, manifest.features)
        predictions = scored.predictions
    q = evaluate(predictions, tables.read(settings.tables.labels), manifest.interval_seconds)
    mlflow.log_metrics({f"{stage}_{k}": v for k, v in q.metrics().items()})
    row = tables.spark.createDataFrame(
        [
            (
                run_id,
                stage,
                manifest.version,
                q.intervals,
                q.true_positives,
                q.false_positives,
                q.false_negatives,
                q.precision,
                q.recall,
                q.f1,
            )
        ],
        "run_id string, stage string, model_version string, intervals long, true_positives long, "
        "false_positives long, false_negatives long, precision double, recall double, f1 double",
    )
    tables.append(row, settings.tables.quality)
    log.info("%s quality: precision %.3f, recall %.3f over %d intervals", stage, q.precision, q.recall, q.intervals)
    return q


# ---- score ---------------------------------------------------------------------------


@dataclass
class ScoreResult:
    window: tuple[dt.datetime, dt.datetime]
    model_version: str
    groups: pd.DataFrame  # the run log rows of this run's groups
    predictions: int
    flagged: int
    blobs: list[str]
    seconds: float
    quality: Quality | None

    @property
    def models_per_second(self) -> float:
        scored = int((self.groups["status"] == "ok").sum())
        return scored / self.seconds if self.seconds else 0.0


def score(
    config: Config,
    tables: Tables,
    settings: AnomalySettings,
    window_end: dt.datetime | None,
    hours: int,
    run_id: str,
) -> ScoreResult:
    """Score the window with the registered model set; predictions to the table and to Blob storage."""
    import mlflow
    from pyspark.sql import functions as F

    manifest = registry.load_manifest(registered_model_name(config, "anomaly"), settings.registry.alias)
    start, end = window_for(tables, settings, window_end, hours)
    log.info("scoring [%s, %s) with model set %s", start, end, manifest.version)
    loc = location_for(config)
    spark = tables.spark
    intervals = build_intervals(tables, settings, start, end, manifest.interval_seconds)
    models = manifest.frame(spark)
    started = time.perf_counter()
    scored = score_intervals(intervals, models, loc, manifest.features)
    try:
        predictions = scored.predictions.withColumn("date", F.to_date("interval_start")).withColumn(
            "hour", F.hour("interval_start")
        )
        tables.overwrite_partitions(predictions, settings.tables.predictions, ["date", "hour"])
        written = upload_predictions(scored.predictions, loc, settings.blob.predictions_prefix).collect()
        seconds = time.perf_counter() - started
        group_log = scored.group_log.unionByName(groups_without_intervals(intervals, models))
        groups = group_log.toPandas()
        append_run_log(tables, settings.tables.run_log, to_run_log(group_log, run_id, "score"))
        counts = scored.predictions.agg(
            F.count("*").alias("n"), F.sum(F.col("is_anomaly").cast("long")).alias("flagged")
        ).first()
        quality = _quality(tables, settings, intervals, manifest, loc, run_id, "score", scored.predictions)
    finally:
        scored.unpersist()
    n, flagged = int(counts["n"]), int(counts["flagged"] or 0)
    by_status = groups["status"].value_counts().to_dict()
    mlflow.log_params(
        {"window_start": start.isoformat(), "window_end": end.isoformat(), "model_version": manifest.version}
    )
    mlflow.log_metrics(
        {
            "predictions": float(n),
            "flagged": float(flagged),
            "score_seconds": seconds,
            **{f"groups_{k}": float(v) for k, v in by_status.items()},
        }
    )
    summary = {
        "status": "ok",
        "rows": n,
        "seconds": seconds,
        "model_version": manifest.version,
        "message": f"window [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}): {flagged} of {n} interval(s) flagged; "
        + ", ".join(f"{v} {k}" for k, v in sorted(by_status.items())),
    }
    append_run_log(tables, settings.tables.run_log, summary_rows(spark, run_id, "score", [summary]))
    return ScoreResult(
        (start, end), manifest.version, groups, n, flagged, [r["blob"] for r in written], seconds, quality
    )

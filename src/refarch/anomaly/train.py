"""Train one detector per (device, sensor) in parallel: `groupBy(device, sensor).applyInPandas`.

Each group fits its pipeline on its own intervals and uploads it to Blob storage under
`models/<device>/<sensor>/<version>/`. A group that fails (too few intervals, a fit or an
upload error) returns a status row instead of raising, so the other groups still train.
The groups that trained are registered as one model set (see `registry`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from refarch.anomaly.detectors import dumps, fit_detector, model_blob
from refarch.anomaly.evaluate import Quality, record_quality
from refarch.anomaly.runlog import append_run_log, summary_rows, to_run_log
from refarch.anomaly.score import score_intervals
from refarch.anomaly.settings import ModelSettings, Settings
from refarch.runtime.blob import BlobLocation

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

TRAIN_SCHEMA = (
    "device string, sensor string, status string, rows long, seconds double, "
    "model_version string, message string, blob string"
)


def new_model_version() -> str:
    """`<UTC time>-<6 hex>`: sorts by time, unique across concurrent runs."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def train_group(
    pdf: pd.DataFrame, location: BlobLocation, settings: ModelSettings, prefix: str, version: str
) -> pd.DataFrame:
    """Fit and upload one group's detector; always returns exactly one status row."""
    started = time.perf_counter()
    device, sensor = str(pdf["device"].iat[0]), str(pdf["sensor"].iat[0])
    data = pdf.dropna(subset=list(settings.features))
    status, message, blob = "ok", "", None
    try:
        if len(data) < settings.min_intervals:
            status = "too_few_intervals"
            message = f"{len(data)} usable interval(s), at least {settings.min_intervals} needed"
        else:
            model = fit_detector(data, settings)
            blob = model_blob(prefix, device, sensor, version)
            location.container_client().upload_blob(blob, dumps(model), overwrite=True)
    except Exception as err:  # one group's failure must not fail the others
        status, message, blob = "failed", f"{type(err).__name__}: {err}"[:500], None
    return pd.DataFrame(
        [
            {
                "device": device,
                "sensor": sensor,
                "status": status,
                "rows": len(pdf),
                "seconds": time.perf_counter() - started,
                "model_version": version if status == "ok" else None,
                "message": message,
                "blob": blob,
            }
        ]
    )


def train_models(
    intervals: DataFrame, location: BlobLocation, settings: ModelSettings, prefix: str, version: str
) -> DataFrame:
    """One status row per (device, sensor): trained models are in Blob storage when this is computed."""
    columns = ["device", "sensor", *settings.features]

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        return train_group(pdf, location, settings, prefix, version)

    return intervals.select(*columns).groupBy("device", "sensor").applyInPandas(run, TRAIN_SCHEMA)


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

    Runs inside an active MLflow run; `model_name` is the registered name for the target.
    """
    import mlflow

    from refarch.anomaly import registry  # MLflow: not on the path of the Spark workers that train groups

    model, seconds_per_interval = settings.model, settings.intervals.seconds
    version = new_model_version()
    started = time.perf_counter()
    groups = train_models(intervals, location, model, settings.blob.models_prefix, version).toPandas()
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
            "interval_seconds": seconds_per_interval,
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
    registered, quality = None, None
    if ok:
        manifest = registry.build_manifest(
            groups, version, model.algorithm, model.features, seconds_per_interval, location.container
        )
        location.container_client().upload_blob(
            f"{settings.blob.models_prefix}/manifests/{version}.json", manifest.to_json(), overwrite=True
        )
        registered = registry.register_model_set(manifest, model_name, settings.registry.alias)
        in_sample = score_intervals(intervals, manifest.frame(spark), location, manifest.features)
        try:
            quality = record_quality(
                tables, settings.tables, in_sample.predictions, version, seconds_per_interval, run_id, "train"
            )
        finally:
            in_sample.unpersist()
    summary = {
        "status": "ok" if ok else "failed",
        "rows": len(groups),
        "seconds": seconds,
        "model_version": version,
        "message": f"{ok} of {len(groups)} model(s) trained, registered version {registered}",
    }
    append_run_log(tables, settings.tables.run_log, summary_rows(spark, run_id, "train", [summary]))
    return TrainResult(version, registered, groups, seconds, quality)

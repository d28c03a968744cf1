"""Train one detector per (device, sensor) in parallel: `groupBy(device, sensor).applyInPandas`.

Each group fits its pipeline on its own intervals and uploads it to Blob storage under
`models/<device>/<sensor>/<version>/`. A group that fails (too few intervals, a fit or an
upload error) returns a status row instead of raising, so the other groups still train.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from typing import TYPE_CHECKING

import pandas as pd

from refarch.anomaly.models import dumps, fit_detector, model_blob
from refarch.anomaly.settings import ModelSettings
from refarch.runtime.blob import BlobLocation

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

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

"""The steps the anomaly notebooks call, one per notebook: land, ingest, intervals, train, score, plot.

Each takes the tables, the typed settings (job parameters already applied), the config when
it needs the target's Blob storage or registry, then the notebook's own parameter values by
keyword; it returns what the notebook shows. The logic lives in the verb modules.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from refarch.anomaly import landing
from refarch.anomaly.ingest import IngestReport, ingest_readings
from refarch.anomaly.intervals import starting_within, window_for, write_intervals
from refarch.anomaly.landing import Landed
from refarch.anomaly.runlog import new_run_id
from refarch.anomaly.score import ScoreResult, score_window
from refarch.anomaly.settings import Settings
from refarch.anomaly.train import TrainResult, train_model_set
from refarch.runtime.blob import BlobLocation, blob_location, ensure_container
from refarch.runtime.config import Config
from refarch.runtime.tracking import registered_model_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pyspark.sql import DataFrame

    from refarch.runtime.tables import Tables


def _location(config: Config) -> BlobLocation:
    """The target's blob location with its container created."""
    location = blob_location(config)
    ensure_container(location.container_client())
    return location


def land(tables: Tables, settings: Settings, config: Config, *, start: dt.datetime | None) -> Landed:
    """01_land: readings from `land.source` into Blob storage; generated data's labels into their table.

    `source: none` (devices land their own files) touches nothing, not even Blob storage.
    """
    if settings.land.source == "none":
        return Landed.nothing()
    landed = landing.land(
        _location(config).container_client(),
        settings.land,
        settings.generator,
        settings.blob,
        Path(config.target.paths.datasets),
        start,
    )
    if len(landed.labels):
        landing.write_labels(tables, settings.tables.labels, landed.labels)
    return landed


def ingest(tables: Tables, settings: Settings, config: Config) -> IngestReport:
    """02_ingest: the raw files landed since the last run into the readings table."""
    return ingest_readings(tables, settings, _location(config), new_run_id("ingest"))


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime
    intervals: DataFrame


def intervals(tables: Tables, settings: Settings, *, window_end: dt.datetime | None) -> Window:
    """03_intervals: aggregate the training window (`windows.train_hours`) into the intervals table."""
    start, end = window_for(tables, settings.tables, window_end, settings.windows.train_hours)
    return Window(start, end, write_intervals(tables, settings.tables, start, end, settings.intervals.seconds))


def train(tables: Tables, settings: Settings, config: Config, *, window_end: dt.datetime | None) -> TrainResult:
    """04_train: one model per group on the training window's intervals; register the set as champion."""
    import mlflow

    start, end = window_for(tables, settings.tables, window_end, settings.windows.train_hours)
    window = starting_within(tables.read(settings.tables.intervals), start, end)
    run_id = new_run_id("train")
    with mlflow.start_run(run_name=run_id):
        return train_model_set(
            tables,
            settings,
            window,
            _location(config),
            registered_model_name(config, settings.registry.model_name),
            run_id,
        )


def score(tables: Tables, settings: Settings, config: Config, *, window_end: dt.datetime | None) -> ScoreResult:
    """05_score: the window (`windows.score_hours`) scored with the registered model set."""
    import mlflow

    from refarch.anomaly.registry import load_manifest

    manifest = load_manifest(registered_model_name(config, settings.registry.model_name), settings.registry.alias)
    start, end = window_for(tables, settings.tables, window_end, settings.windows.score_hours)
    intervals = write_intervals(tables, settings.tables, start, end, manifest.interval_seconds)
    run_id = new_run_id("score")
    with mlflow.start_run(run_name=run_id):
        return score_window(tables, settings, intervals, manifest, _location(config), (start, end), run_id)


@dataclass(frozen=True)
class SensorPlot:
    device: str
    sensor: str
    figure: Figure
    predictions: pd.DataFrame


def plot_sensor(
    tables: Tables, settings: Settings, *, device: str, sensor: str, window_end: dt.datetime | None
) -> SensorPlot:
    """06_plot_sensor: one series over the window (empty device/sensor: the most flagged one)."""
    from refarch.anomaly.plots import pick_series, plot_series, series_frames

    start, end = window_for(tables, settings.tables, window_end, settings.windows.score_hours)
    device, sensor = pick_series(tables, settings.tables, start, end, device or None, sensor or None)
    readings, predictions, labels = series_frames(tables, settings.tables, device, sensor, start, end)
    figure = plot_series(readings, predictions, labels, f"{device} / {sensor}", settings.intervals.seconds)
    return SensorPlot(device, sensor, figure, predictions)

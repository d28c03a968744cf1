"""One sensor's readings with the intervals its model flagged and the injected anomalies."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from refarch.anomaly.settings import TableNames
    from refarch.runtime.tables import Tables


def pick_series(
    tables: Tables,
    names: TableNames,
    start: dt.datetime,
    end: dt.datetime,
    device: str | None,
    sensor: str | None,
) -> tuple[str, str]:
    """The given series, else the one with the most flagged intervals in the window."""
    from pyspark.sql import functions as F

    if device and sensor:
        return device, sensor
    preds = tables.read(names.predictions).filter(
        (F.col("interval_start") >= F.lit(start)) & (F.col("interval_start") < F.lit(end))
    )
    if device:
        preds = preds.filter(F.col("device") == device)
    if sensor:
        preds = preds.filter(F.col("sensor") == sensor)
    top = (
        preds.groupBy("device", "sensor")
        .agg(F.sum(F.col("is_anomaly").cast("int")).alias("flagged"))
        .orderBy(F.desc("flagged"), "device", "sensor")
        .first()
    )
    if top is None:
        raise LookupError(f"no predictions in [{start}, {end}) for device={device} sensor={sensor}")
    return top["device"], top["sensor"]


def series_frames(
    tables: Tables, names: TableNames, device: str, sensor: str, start: dt.datetime, end: dt.datetime
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(readings, predictions, labels) of one series in [start, end) as pandas frames."""
    from pyspark.sql import functions as F

    t = names

    def window(df, col):
        return df.filter((F.col(col) >= F.lit(start)) & (F.col(col) < F.lit(end)))

    readings = window(tables.read(t.readings), "TS").filter((F.col("Device") == device) & (F.col("Sensor") == sensor))
    preds = window(tables.read(t.predictions), "interval_start").filter(
        (F.col("device") == device) & (F.col("sensor") == sensor)
    )
    r = readings.select("TS", "Value").orderBy("TS").toPandas()
    pr = preds.select("interval_start", "score", "is_anomaly", "model_version").orderBy("interval_start").toPandas()
    if tables.exists(t.labels):
        lab = (
            tables.read(t.labels)
            .filter((F.col("Device") == device) & (F.col("Sensor") == sensor))
            .filter((F.col("end") >= F.lit(start)) & (F.col("start") < F.lit(end)))
            .select("kind", "start", "end")
            .toPandas()
        )
    else:
        lab = pd.DataFrame(columns=["kind", "start", "end"])
    return r, pr, lab


def plot_series(
    readings: pd.DataFrame,
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    title: str,
    interval_seconds: int,
) -> Figure:
    """Readings as a line; flagged intervals shaded red; injected anomalies as grey bands below."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(readings["TS"], readings["Value"], lw=0.8, color="tab:blue", label="reading")
    step = pd.Timedelta(seconds=interval_seconds)
    first = True
    for s in predictions.loc[predictions["is_anomaly"], "interval_start"]:
        ax.axvspan(s, s + step, color="tab:red", alpha=0.3, lw=0, label="flagged" if first else None)
        first = False
    first = True
    for row in labels.itertuples(index=False):
        ax.axvspan(row.start, row.end, ymax=0.05, color="grey", alpha=0.8, lw=0, label="injected" if first else None)
        first = False
    ax.set_title(title)
    ax.set_xlabel("time (UTC)")
    ax.legend(loc="upper right")
    fig.autofmt_xdate()
    return fig

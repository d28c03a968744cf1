"""The anomaly notebooks' parameters, one declaration per notebook (read by `bootstrap` and the job check).

A parameter with `setting=` takes its default from conf/anomaly.yml for the target and, when
given, overrides that setting for the run; in the job files its default is "" (= the conf value).
"""

from __future__ import annotations

import datetime as dt

from refarch.anomaly.settings import ALGORITHMS, Settings
from refarch.runtime import Param, notebooks

notebook = notebooks("anomaly", Settings)

SOURCE = Param(
    "source",
    setting="land.source",
    help="where readings come from: 'generated' (simulated devices, with the anomalies they carry), "
    "'none' (only the files devices landed in Blob storage), or your own readings: a file path or "
    "http(s) URL of a .csv, .tsv or .txt (optionally .gz) or a .zip of them, with the columns "
    "TS, Device, Sensor (or Tag), Value",
)
SHA256 = Param(
    "sha256",
    setting="land.sha256",
    help="SHA-256 (64 hex digits) the source file must have, checked before it is read; empty: not checked",
)
WINDOW_END = Param(
    "window_end",
    None,
    type=dt.datetime,
    help="end of the window, on the hour (ISO, UTC); empty: the end of the newest reading's hour",
)
TRAIN_HOURS = Param("train_hours", setting="windows.train_hours", help="hours of intervals the models train on")
INTERVAL_SECONDS = Param(
    "interval_seconds", setting="intervals.seconds", help="interval length in seconds; must divide an hour"
)
WINDOW_HOURS = Param("window_hours", setting="windows.score_hours", help="hours of intervals scored (and plotted)")

LAND = notebook(
    "01_land",
    [
        SOURCE,
        SHA256,
        Param(
            "start",
            None,
            type=dt.datetime,
            help="first hour to generate (ISO, UTC); empty: the hour after the newest landed one "
            "(generator.first_hour when none has landed)",
        ),
        Param("hours", setting="generator.hours", help="hours of readings to generate"),
        Param("devices", setting="generator.devices", help="devices to simulate"),
        Param("sensors", setting="generator.sensors", help="sensors per device"),
        Param("seed", setting="generator.seed", help="seed of the generated series and anomalies"),
    ],
    help="land raw readings in Blob storage",
)
INGEST = notebook("02_ingest", [], help="read the raw files landed since the last run")
INTERVALS = notebook("03_intervals", [WINDOW_END, TRAIN_HOURS, INTERVAL_SECONDS], help="aggregate the training window")
TRAIN = notebook(
    "04_train",
    [
        WINDOW_END,
        TRAIN_HOURS,
        INTERVAL_SECONDS,
        Param("algorithm", setting="model.algorithm", choices=ALGORITHMS, help="the detector every group fits"),
    ],
    help="train one model per (device, sensor) and register the set",
)
SCORE = notebook("05_score", [WINDOW_END, WINDOW_HOURS], help="score the window with every group's model")
PLOT_SENSOR = notebook(
    "06_plot_sensor",
    [
        Param("device", "", help="device to plot; empty: the series with the most flagged intervals"),
        Param("sensor", "", help="sensor to plot; empty: the most flagged one (of the device, if given)"),
        WINDOW_END,
        WINDOW_HOURS,
    ],
    help="one sensor's readings with the intervals its model flagged",
)

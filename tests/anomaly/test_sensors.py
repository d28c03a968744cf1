"""The generator's series and injected anomalies, and the loader's column and file handling."""

from __future__ import annotations

import datetime as dt
import gzip
import zipfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from refarch.datasets.download import DownloadError
from refarch.datasets.sensors import (
    PROFILES,
    SensorDataError,
    SensorSpec,
    generate,
    generate_hour,
    load_readings,
    normalize_columns,
    read_readings,
)

HOUR = dt.datetime(2026, 1, 1, 5)


def test_an_hour_has_every_series_at_every_step():
    spec = SensorSpec(devices=3, sensors=2, step_seconds=60, anomaly_rate=0.0, seed=42)
    readings, labels = generate_hour(spec, HOUR)
    assert list(readings.columns) == ["TS", "Device", "Sensor", "Value"]
    assert len(readings) == 3 * 2 * 60
    assert readings.groupby(["Device", "Sensor"]).size().eq(60).all()
    assert readings["TS"].min() == pd.Timestamp(HOUR)
    assert readings["TS"].max() == pd.Timestamp(HOUR) + pd.Timedelta(minutes=59)
    assert sorted(readings["Sensor"].unique()) == ["pressure", "temperature"]
    assert labels.empty


def test_normal_values_stay_near_each_sensors_operating_range():
    spec = SensorSpec(devices=4, sensors=8, step_seconds=30, anomaly_rate=0.0, seed=42)
    readings, _ = generate_hour(spec, HOUR)
    for profile in PROFILES:
        values = readings.loc[readings["Sensor"] == profile.name, "Value"]
        margin = profile.span * 0.6  # device offset + daily swing + 4 sd of noise
        assert values.between(profile.low - margin, profile.high + margin).all(), profile.name
        assert abs(values.mean() - (profile.low + profile.high) / 2) < profile.span * 0.35


def test_hours_generated_one_at_a_time_equal_a_range_generated_at_once():
    spec = SensorSpec(devices=2, sensors=3, step_seconds=60, anomaly_rate=0.5, seed=7)
    readings, labels = generate(spec, HOUR, 2)
    r0, l0 = generate_hour(spec, HOUR)
    r1, l1 = generate_hour(spec, HOUR + dt.timedelta(hours=1))
    pd.testing.assert_frame_equal(readings, pd.concat([r0, r1], ignore_index=True))
    pd.testing.assert_frame_equal(labels, pd.concat([l0, l1], ignore_index=True))
    other, _ = generate_hour(SensorSpec(devices=2, sensors=3, step_seconds=60, anomaly_rate=0.5, seed=8), HOUR)
    assert not other["Value"].equals(r0["Value"])


def test_injected_anomalies_are_where_the_labels_say():
    spec = SensorSpec(devices=6, sensors=4, step_seconds=10, anomaly_rate=1.0, seed=3)
    readings, labels = generate_hour(spec, HOUR)
    clean, _ = generate_hour(SensorSpec(devices=6, sensors=4, step_seconds=10, anomaly_rate=0.0, seed=3), HOUR)
    assert len(labels) == 24  # rate 1: one anomaly per series
    assert set(labels["kind"]) == {"spike", "drift", "stuck"}
    key = ["TS", "Device", "Sensor"]
    both = readings.merge(clean, on=key, suffixes=("", "_clean"))
    span = {p.name: p.span for p in PROFILES}
    for lab in labels.itertuples(index=False):
        series = both[(both["Device"] == lab.Device) & (both["Sensor"] == lab.Sensor)]
        inside = series["TS"].between(lab.start, lab.end)
        assert inside.sum() >= 1
        # outside the label the series is untouched
        assert (series.loc[~inside, "Value"] == series.loc[~inside, "Value_clean"]).all()
        hit = series.loc[inside]
        if lab.kind == "spike":
            assert ((hit["Value"] - hit["Value_clean"]).abs() >= 0.5 * span[lab.Sensor] - 1e-6).all()
        elif lab.kind == "drift":
            assert ((hit["Value"] - hit["Value_clean"]).abs() >= 0.35 * 0.4 * span[lab.Sensor] - 1e-6).all()
        else:
            assert hit["Value"].nunique() == 1 and len(hit) >= 3


def test_spec_rejects_impossible_sizes():
    valid = SensorSpec(devices=10, sensors=5, step_seconds=5, anomaly_rate=0.15, seed=42)
    with pytest.raises(ValueError, match="divide an hour"):
        replace(valid, step_seconds=7)
    with pytest.raises(ValueError, match="at least 1"):
        replace(valid, devices=0)
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        replace(valid, anomaly_rate=1.5)
    assert replace(valid, sensors=10).sensor_profiles()[8].name == "temperature_2"


def test_loader_accepts_the_references_tag_column_in_any_order(tmp_path: Path):
    path = tmp_path / "sensor_data.csv"
    path.write_text("Device,Tag,Value,Timestamp\nD1,T1,1.5,2026-01-01 00:00:00\nD1,T2,oops,2026-01-01 00:00:10\n")
    df = read_readings(path)
    assert list(df.columns) == ["TS", "Device", "Sensor", "Value"]
    assert df.to_dict("records") == [
        {"TS": "2026-01-01 00:00:00", "Device": "D1", "Sensor": "T1", "Value": "1.5"},
        {"TS": "2026-01-01 00:00:10", "Device": "D1", "Sensor": "T2", "Value": "oops"},  # kept for quarantine
    ]


def test_loader_reads_gz_tsv_and_zip(tmp_path: Path):
    text = "TS\tDevice\tSensor\tValue\n2026-01-01T00:00:00\tD1\tS1\t2.0\n"
    tsv = tmp_path / "r.tsv.gz"
    tsv.write_bytes(gzip.compress(text.encode()))
    assert read_readings(tsv)["Value"].tolist() == ["2.0"]
    archive = tmp_path / "r.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.csv", "ts,device,sensor,value\n2026-01-01T00:00:00,D1,S1,1\n")
        zf.writestr("b.csv", "ts,device,tag,value\n2026-01-01T00:00:00,D2,S1,2\n")
        zf.writestr("README.md", "not data")
    assert read_readings(archive)["Device"].tolist() == ["D1", "D2"]


def test_loader_names_missing_columns(tmp_path: Path):
    path = tmp_path / "bad.csv"
    path.write_text("when,what\n1,2\n")
    with pytest.raises(SensorDataError, match=r"missing column.*TS.*Device"):
        read_readings(path)
    with pytest.raises(SensorDataError, match="Sensor"):
        normalize_columns(pd.DataFrame(columns=["TS", "Device", "Value"]))


def test_load_readings_checks_the_file_and_its_checksum(tmp_path: Path):
    path = tmp_path / "r.csv"
    path.write_text("TS,Device,Sensor,Value\n2026-01-01T00:00:00,D1,S1,1\n")
    assert len(load_readings(path, tmp_path / "cache")) == 1
    with pytest.raises(DownloadError, match="does not match"):
        load_readings(path, tmp_path / "cache", sha256="0" * 64)
    with pytest.raises(DownloadError, match="no such file"):
        load_readings(tmp_path / "missing.csv", tmp_path / "cache")

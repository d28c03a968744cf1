"""The two bundle jobs end to end on the local target: train, then score the next hour."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from refarch.jobs.runner import run_job

REPO_JOBS = __import__("pathlib").Path(__file__).resolve().parents[2] / "jobs"
SMALL = {"devices": "2", "sensors": "2"}


def test_scoring_job_is_hourly_and_paused_outside_prod():
    spec = yaml.safe_load((REPO_JOBS / "anomaly_scoring.job.yml").read_text())["resources"]["jobs"]["anomaly_scoring"]
    assert spec["schedule"]["quartz_cron_expression"] == "0 5 * * * ?"
    assert spec["schedule"]["pause_status"] == "${var.pause_status}"
    params = {p["name"]: p["default"] for p in spec["parameters"]}
    assert params["window_end"] == "" and params["window_hours"] == ""  # "" = windows.score_hours of the conf
    assert params["hours"] == "1"  # one new hour per run
    assert [t["task_key"] for t in spec["tasks"]] == ["check_parameters", "land", "ingest", "score", "plot_sensor"]


def test_a_bad_parameter_fails_the_job_naming_it_before_any_task(azurite):
    from refarch.jobs.check import JobParameterError

    with pytest.raises(JobParameterError, match=r"parameter 'hours': 'many' is not a valid int \(task land"):
        run_job("anomaly_training", params={**SMALL, "hours": "many"})


@pytest.mark.slow
def test_train_then_score_the_next_hour(azurite, tables, config):
    from pyspark.sql import functions as F

    from refarch.runtime.blob import container_client

    trained = run_job("anomaly_training", params={**SMALL, "hours": "3", "train_hours": "3"})
    assert trained.ok, trained.summary()
    readings = tables.read("anomaly_readings")
    assert readings.count() == 2 * 2 * 720 * 3
    log = tables.read("anomaly_run_log")
    train_groups = log.filter((F.col("stage") == "train") & F.col("device").isNotNull()).collect()
    assert sorted((r.device, r.sensor, r.status) for r in train_groups) == [
        ("dev-001", "pressure", "ok"),
        ("dev-001", "temperature", "ok"),
        ("dev-002", "pressure", "ok"),
        ("dev-002", "temperature", "ok"),
    ]

    scored = run_job("anomaly_scoring", params=SMALL)
    assert scored.ok, scored.summary()
    hour = dt.datetime(2026, 1, 1, 3)
    preds = tables.read("anomaly_predictions").filter(F.col("interval_start") >= F.lit(hour))
    assert preds.count() == 4 * 60
    assert preds.select("model_version").distinct().count() == 1
    log = tables.read("anomaly_run_log")  # read again: a DataFrame lists its files when created
    score_groups = log.filter((F.col("stage") == "score") & F.col("device").isNotNull()).collect()
    assert sorted(r.status for r in score_groups) == ["ok"] * 4
    names = set(container_client(config).list_blob_names(name_starts_with="predictions/2026-01-01/03/"))
    assert names == {"predictions/2026-01-01/03/predictions.parquet"}
    quality = tables.read("anomaly_quality").filter(F.col("stage") == "score").collect()
    assert len(quality) == 1 and 0.0 <= quality[0].precision <= 1.0 and quality[0].intervals == 240

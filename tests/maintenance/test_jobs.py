"""Both jobs end to end on the local target, on a few generated machines."""

from __future__ import annotations

import datetime as dt

import mlflow
import pytest

from refarch.jobs.runner import run_job
from refarch.maintenance import CLASSES

TRAINING = {
    "machines": "6",
    "start_date": "2015-01-01",
    "to_date": "2015-04-01",
    "split_date": "2015-03-01",
    "features_table": "job_maintenance_features",
}
SCORING = {
    "start_date": "2015-03-20",
    "to_date": "2015-04-01",
    "features_table": "job_maintenance_scoring_features",
    "output_table": "job_maintenance_scores",
}


@pytest.mark.slow
def test_training_then_scoring(spark, tables, config):
    result = run_job("maintenance_training", TRAINING)
    assert result.ok, result.summary()
    assert [t.task_key for t in result.tasks] == ["ingest", "features", "train"]
    assert tables.read("maintenance_machines").count() == 6
    features = tables.read("job_maintenance_features")
    assert features.count() == 6 * 90 * 8
    assert {r.label for r in features.select("label").distinct().collect()} <= set(CLASSES)

    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("maintenance", "champion")
    run = client.get_run(champion.run_id)
    assert run.data.tags["promoted"] == "True"
    assert "failure_recall" in run.data.metrics

    scored = run_job("maintenance_scoring", SCORING)
    assert scored.ok, scored.summary()
    scores = tables.read("job_maintenance_scores")
    assert scores.count() == 6 * 12 * 8
    days = {r.scoring_date for r in scores.select("scoring_date").distinct().collect()}
    assert days == {dt.date(2015, 3, 20) + dt.timedelta(days=d) for d in range(12)}
    assert {r.model_version for r in scores.select("model_version").distinct().collect()} == {str(champion.version)}


@pytest.mark.slow
def test_bad_parameters_fail_before_any_work():
    result = run_job("maintenance_scoring", {**SCORING, "to_date": "2015-03-01"})
    assert not result.ok
    assert "parameter 'to_date'" in result.tasks[0].error
    assert result.tasks[1].status == "SKIPPED"
    bad_date = run_job("maintenance_training", {**TRAINING, "start_date": "2015-02-30"})
    assert "parameter 'start_date': '2015-02-30' is not a valid date" in bad_date.tasks[0].error

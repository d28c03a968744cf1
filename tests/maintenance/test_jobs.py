"""Both jobs end to end on the local target, from a user's folder of the five published files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from refarch.datasets import maintenance as pdm
from refarch.jobs.check import JobParameterError
from refarch.jobs.runner import run_job
from refarch.maintenance import params, steps
from refarch.maintenance.labels import CLASSES
from refarch.maintenance.settings import Settings
from refarch.runtime.config import load_config
from refarch.runtime.notebook import LocalRunContext, local_run

PUBLISHED = {"PdM_telemetry.csv", "PdM_errors.csv", "PdM_maint.csv", "PdM_machines.csv", "PdM_failures.csv"}
PREFIX = "my_pdm"
TRAINING = {
    "dataset": "pdm100",
    "table_prefix": PREFIX,
    "start_date": "2015-01-01",
    "to_date": "2015-04-01",
    "split_date": "2015-03-01",
    "features_table": "job_maintenance_features",
}
SCORING = {
    "days": "",
    "start_date": "2015-03-20",
    "to_date": "2015-04-01",
    "table_prefix": PREFIX,
    "features_table": "job_maintenance_scoring_features",
    "output_table": "job_maintenance_scores",
}


@pytest.fixture(scope="module")
def user_files(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame]]:
    """A user's own copy of the pdm100 files: the published names and format, 6 machines over Q1 2015."""
    folder = tmp_path_factory.mktemp("my-pdm100")
    frames = pdm.generate(6, dt.date(2015, 1, 1), dt.date(2015, 4, 1), seed=11)
    pdm.write_csv(frames, folder, style="iso")
    assert {p.name for p in folder.iterdir()} == PUBLISHED
    assert (folder / "PdM_telemetry.csv").read_text().splitlines()[:2] == [
        "datetime,machineID,volt,rotate,pressure,vibration",
        f"2015-01-01 06:00:00,1,{frames['telemetry'].volt[0]:.6f},{frames['telemetry'].rotate[0]:.6f},"
        f"{frames['telemetry'].pressure[0]:.6f},{frames['telemetry'].vibration[0]:.6f}",
    ]
    return folder, frames


@pytest.mark.slow
def test_training_from_the_users_folder_then_scoring(spark, tables, config, refarch_home, user_files):
    folder, frames = user_files
    result = run_job("maintenance_training", {**TRAINING, "source_dir": str(folder)})
    assert result.ok, result.summary()
    assert [t.task_key for t in result.tasks] == ["check_parameters", "ingest", "features", "train"]

    # every row of the user's five files is in its raw table; nothing was downloaded or cached
    for kind in pdm.KINDS:
        assert tables.read(f"{PREFIX}_{kind}").count() == len(frames[kind]), kind
        assert tables.read(f"{PREFIX}_{kind}_quarantine").count() == 0, kind
    machines = tables.read(f"{PREFIX}_machines").toPandas().sort_values("machineID", ignore_index=True)
    pd.testing.assert_frame_equal(machines, frames["machines"], check_dtype=False)
    assert tables.read(f"{PREFIX}_telemetry").count() == 6 * 90 * 24
    assert not (refarch_home / "datasets" / "maintenance" / "pdm100").exists()

    features = tables.read("job_maintenance_features")
    assert features.count() == 6 * 90 * 8
    assert {r.label for r in features.select("label").distinct().collect()} <= set(CLASSES)

    maintenance = load_config("maintenance")
    settings = maintenance.settings(Settings)
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(steps.model_name(maintenance, settings), "champion")
    run = client.get_run(champion.run_id)
    assert run.data.tags["promoted"] == "True"
    assert "failure_recall" in run.data.metrics
    assert int(run.data.params["num_trees"]) == settings.train.num_trees

    scored = run_job("maintenance_scoring", SCORING)
    assert scored.ok, scored.summary()
    scores = tables.read("job_maintenance_scores")
    assert scores.count() == 6 * 12 * 8
    days = {r.scoring_date for r in scores.select("scoring_date").distinct().collect()}
    assert days == {dt.date(2015, 3, 20) + dt.timedelta(days=d) for d in range(12)}
    assert {r.model_version for r in scores.select("model_version").distinct().collect()} == {str(champion.version)}

    # what the explore notebooks show, from the same tables and registry
    logged = steps.logged_evaluation(maintenance, settings, alias="champion")
    assert logged.version == str(champion.version)
    assert logged.metrics["failure_recall"] == pytest.approx(run.data.metrics["failure_recall"])
    assert int(logged.confusion.to_numpy().sum()) == 6 * 31 * 8  # every test row of March
    joined, ev = steps.scores_against_labels(
        tables, features_table=SCORING["features_table"], output_table=SCORING["output_table"]
    )
    assert joined.count() == 6 * 12 * 8
    assert int(ev.confusion.to_numpy().sum()) == 6 * 12 * 8
    _run_explore_notebooks()


def _run_explore_notebooks() -> None:
    """Each explore notebook, as a person would open it, on the tables the jobs wrote."""
    from refarch.jobs.notebook_exec import run_notebook

    given = {
        params.EXPLORE_RAW_DATA: {"table_prefix": PREFIX, "month_start": "2015-02-01", "machine_id": "2"},
        params.EXPLORE_FEATURES: {"features_table": TRAINING["features_table"]},
        params.EXPLORE_MODEL: {},
        params.EXPLORE_SCORING: {k: SCORING[k] for k in ("features_table", "output_table")},
    }
    repo = Path(__file__).resolve().parents[2]
    shown = {}
    for notebook, values in given.items():
        with local_run(LocalRunContext(parameters=values, task_key=notebook.name)):
            namespace = run_notebook(repo / notebook.path)
        assert namespace["ctx"].notebook is notebook
        shown[notebook.name] = namespace
    assert len(shown["explore_raw_data"]["machines"]) == 6
    assert shown["explore_features"]["profile"].by_label.loc["rows"].sum() == 6 * 90 * 8
    assert shown["explore_model"]["logged"].importances.sum() == pytest.approx(1.0)
    assert int(shown["explore_scoring"]["ev"].confusion.to_numpy().sum()) == 6 * 12 * 8


@pytest.mark.slow
def test_bad_parameters_fail_before_any_work(tmp_path):
    result = run_job("maintenance_scoring", {**SCORING, "to_date": "2015-03-01"})
    tasks = {t.task_key: t for t in result.tasks}
    assert not result.ok and tasks["check_parameters"].status == "SUCCESS"
    assert "parameter 'to_date'" in tasks["features"].error  # an empty range: checked before Spark starts
    assert tasks["score"].status == "SKIPPED"
    with pytest.raises(JobParameterError, match="parameter 'start_date': '2015-02-30' is not a valid date"):
        run_job("maintenance_training", {**TRAINING, "start_date": "2015-02-30"})

    # a folder without the five files fails the ingest once (no retry), naming the parameter
    (tmp_path / "PdM_telemetry.csv").write_text("datetime,machineID,volt,rotate,pressure,vibration\n")
    no_files = run_job("maintenance_training", {**TRAINING, "source_dir": str(tmp_path)})
    ingest = no_files.tasks[1]
    assert (ingest.status, ingest.attempts) == ("FAILED", 1)
    assert "parameter 'source_dir'" in ingest.error and "no errors file" in ingest.error
    assert [t.status for t in no_files.tasks[2:]] == ["SKIPPED", "SKIPPED"]

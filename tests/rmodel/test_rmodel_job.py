"""`refarch job run rmodel`: trained in R, evaluated in Python, `rmodel@champion` moved only by a better model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from refarch.jobs.runner import run_job

from .conftest import rscript

pytestmark = pytest.mark.slow

SMALL = {"num_trees": "15", "min_node_size": "50"}


def _champion() -> str:
    return str(MlflowClient().get_model_version_by_alias("rmodel", "champion").version)


def test_the_job_trains_in_r_registers_the_champion_and_prints_the_metrics(config, capsys):
    first = run_job("rmodel", params=SMALL)
    assert first.ok, first.summary()
    assert [t.task_key for t in first.tasks] == ["check_parameters", "prepare", "train", "evaluate"]
    out = capsys.readouterr().out
    found = re.search(r"rmodel version (\d+): RMSE ([\d.]+), MAE ([\d.]+), R² ([\d.]+) on 10788 held-out rows", out)
    assert found, out[-3000:]
    version, rmse, mae, r2 = found.group(1), *map(float, found.groups()[1:])
    assert _champion() == version
    assert 300 < rmse < 1500 and mae < rmse and r2 > 0.95  # diamonds' prices: 326 to 18,823 dollars
    run = MlflowClient().get_run(MlflowClient().get_model_version("rmodel", version).run_id)
    assert run.data.metrics["rmse"] == pytest.approx(rmse, abs=0.05)
    assert run.data.params["ranger.num_trees"] == "15" and run.data.tags["language"] == "R"
    # the spec and the R notebook's outputs are in the run folder, under the target's checkpoints path
    spec = json.loads(
        Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="spec.json")).read_text()
    )
    assert spec["folder"].startswith(config.target.paths.checkpoints)
    assert {p.name for p in Path(spec["folder"]).iterdir()} == {"spec.json", "model.rds", "test.csv", "train_info.json"}

    # a far worse forest is registered but does not take the alias
    worse = run_job("rmodel", params={"num_trees": "1", "min_node_size": "5000", "mtry": "1"})
    assert worse.ok, worse.summary()
    out = capsys.readouterr().out
    assert re.search(rf"version \d+ \(RMSE [\d.]+\) does not beat champion version {version}", out), out[-2000:]
    assert _champion() == version

    # promote=false: even a better model leaves the alias alone
    kept = run_job("rmodel", params={**SMALL, "num_trees": "30", "promote": "false"})
    assert kept.ok and _champion() == version


def test_a_csv_of_your_own_and_a_level_r_does_not_know(config, tmp_path, capsys):

    diamonds = tmp_path / "diamonds.csv"
    rscript(f'write.csv(as.data.frame(ggplot2::diamonds)[1:3000, ], "{diamonds}", row.names = FALSE)')
    mine = run_job("rmodel", params={**SMALL, "data_path": str(diamonds), "promote": "false"})
    assert mine.ok, mine.summary()
    assert re.search(r"on 600 held-out rows \(2400 training rows", capsys.readouterr().out)

    frame = pd.read_csv(diamonds)
    frame.loc[7, "cut"] = "Perfect"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    failed = run_job("rmodel", params={**SMALL, "data_path": str(bad)})
    status = {t.task_key: t.status for t in failed.tasks}
    assert status == {"check_parameters": "SUCCESS", "prepare": "SUCCESS", "train": "FAILED", "evaluate": "SKIPPED"}
    assert failed.failed[0].error == "02_train.r cell 4: R error: column cut: Perfect not among the declared levels"

"""`refarch job run images`: parameters checked first, then register and score, on this machine."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from refarch.images.generate import generate_images
from refarch.jobs.runner import run_job
from refarch.runtime.params import ParameterError

SMALL = {"depth": "18", "weights": "IMAGENET1K_V1"}


@pytest.mark.slow
def test_the_job_registers_the_champion_and_scores_a_folder(spark, tables, mlflow_tracking, tmp_path):
    folder = tmp_path / "to-score"
    generate_images(folder, n_images=10, bad_files=1, seed=3)
    result = run_job("images", params={**SMALL, "images_path": str(folder), "scoring_date": "2026-04-01"})
    assert result.ok, result.summary()
    assert [t.task_key for t in result.tasks] == ["check_parameters", "register", "score"]
    champion = MlflowClient().get_model_version_by_alias("image_classifier", "champion")
    predictions = tables.read("image_predictions").toPandas()
    today = predictions[predictions["scoring_date"].astype(str) == "2026-04-01"]
    assert len(today) == 10 and set(today["model_version"]) == {str(champion.version)}
    quarantine = tables.read("image_quarantine").toPandas()
    assert quarantine["reason"].tolist() == ["empty_file"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"depth": "34", "weights": "IMAGENET1K_V2"}, "only IMAGENET1K_V1 weights for ResNet-34"),
        ({"depth": "20"}, "parameter 'depth'"),
        ({**SMALL, "scoring_date": "yesterday"}, "parameter 'scoring_date': 'yesterday' is not a valid date"),
    ],
)
def test_a_bad_parameter_fails_before_any_task(params, message):
    with pytest.raises(ParameterError, match=message):
        run_job("images", params=params)

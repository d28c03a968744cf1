"""The prepare task's tables and quarantine, and the whole `faq` job on tiny generated data."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from refarch.faq.ingest import ingest, load_raw
from refarch.jobs.check import JobParameterError
from refarch.jobs.runner import run_job
from refarch.runtime.quality import TooManyBadRows

from .conftest import generate

TINY = {"n_families": "14", "min_dupes": "5", "min_text": "80", "parallel_trials": "false"}


def test_ingest_writes_prepared_tables_and_quarantines_bad_rows(tables, config, faq_settings):
    settings = faq_settings(
        min_text=80,
        min_dupes=5,
        generator__n_families=10,
        generator__min_duplicates=6,
        generator__max_duplicates=8,
        generator__malformed_rows=2,
        generator__seed=4,
        tables__originals="t_faq_originals",
        tables__duplicates="t_faq_duplicates",
        tables__preparation="t_faq_preparation",
        tables__quarantine="t_faq_quarantine",
    )
    raw = load_raw("generated", settings, config)
    result = ingest(tables, raw, settings, "generated")
    originals = tables.read("t_faq_originals").toPandas()
    duplicates = tables.read("t_faq_duplicates").toPandas()
    assert len(originals) == len(result.prepared.originals) > 0
    assert set(duplicates["original_id"]) <= set(originals["id"])
    quarantined = tables.read("t_faq_quarantine").toPandas()
    assert sorted(quarantined["reason"]) == ["id is not an integer"] * 2 + ["text is empty"] * 2
    assert set(quarantined["source"]) == {"generated"}
    assert result.quality.bad == 4
    steps = tables.read("t_faq_preparation").toPandas()

    def rows(df):
        return sorted(zip(df["step"], df["table"], df["removed"], strict=True))

    assert rows(steps) == rows(result.prepared.steps)
    assert steps.loc[steps.table == "questions", "removed"].sum() + len(originals) == len(raw.questions)


def test_too_many_bad_rows_stop_the_ingest(tables, faq_settings):
    raw = generate(n_families=3, min_duplicates=2, max_duplicates=2, malformed_rows=5, seed=1)
    settings = faq_settings(max_bad_share=0.05, tables__quarantine="t_faq_quarantine2")
    with pytest.raises(TooManyBadRows, match="t_faq_quarantine2"):
        ingest(tables, raw, settings, "generated")


def test_unknown_dataset_is_refused(config, faq_settings):
    with pytest.raises(ValueError, match="generated, stackoverflow"):
        load_raw("kaggle", faq_settings(), config)


@pytest.mark.slow
def test_faq_job_runs_end_to_end(spark, tables):
    result = run_job("faq", params=TINY)
    assert result.ok, result.summary()
    assert [t.task_key for t in result.tasks] == ["check_parameters", "prepare", "train", "ask"]
    originals = tables.read("faq_originals").count()
    evaluation = tables.read("faq_evaluation").toPandas()
    assert originals >= 10
    assert len(evaluation) > 0 and evaluation["rank"].between(1, originals).all()
    assert (evaluation["rank"] == 1).mean() >= 0.8
    version = MlflowClient().get_model_version_by_alias("faq", "champion")
    run = MlflowClient().get_run(version.run_id)
    assert run.data.tags["dataset"] == "generated"
    assert run.data.metrics["n_originals"] == originals


def test_a_bad_job_parameter_fails_before_the_first_task_by_name():
    with pytest.raises(JobParameterError) as caught:
        run_job("faq", params={**TINY, "min_dupes": "0"})
    assert "parameter 'min_dupes' (min_dupes)" in str(caught.value)
    assert "task prepare: notebooks/faq/01_prepare.ipynb" in str(caught.value)

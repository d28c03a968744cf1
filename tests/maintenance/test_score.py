"""Registration, the champion rule, and scoring that replaces exactly the re-run days."""

from __future__ import annotations

import mlflow
import pytest

from refarch.maintenance.labels import CLASSES
from refarch.maintenance.registry import current_champion, log_and_register, promote_if_better
from refarch.maintenance.score import NoChampionError, in_range, load_champion, score, write_scores
from refarch.maintenance.train import evaluate, feature_importances, fit, label_index

from .conftest import SPEC, day, train_settings


@pytest.fixture(scope="module")
def registered(spark, mlflow_experiment):
    """One tiny random forest registered as version 1 of a fresh model name."""
    from .conftest import tiny_features

    name = "maintenance_score_test"
    features = spark.createDataFrame(tiny_features())
    model = fit(features, train_settings(num_trees=10, max_depth=5), SPEC)
    ev = evaluate(model, label_index(features))
    with mlflow.start_run(run_name="score-test"):
        version = log_and_register(model, ev, feature_importances(model, SPEC), {"num_trees": 4}, name, features)
    return name, version, ev


def test_the_champion_moves_only_to_a_better_model(registered):
    name, version, _ = registered
    with pytest.raises(NoChampionError, match="run the maintenance_training job"):
        load_champion(name)
    first = promote_if_better(name, version, 0.70, champion_score=None)
    assert first.promoted and current_champion(name) == version
    worse = promote_if_better(name, "99", 0.65, champion_score=0.70)
    assert not worse.promoted and current_champion(name) == version
    assert "does not beat" in worse.reason
    tie = promote_if_better(name, "99", 0.70, champion_score=0.70)
    assert not tie.promoted


def test_logged_run_has_metrics_confusion_matrix_and_model(registered):
    name, version, ev = registered
    client = mlflow.MlflowClient()
    mv = client.get_model_version(name, version)
    run = client.get_run(mv.run_id)
    assert run.data.metrics["failure_recall"] == pytest.approx(ev.pooled["failure_recall"])
    assert {"precision_comp1", "recall_comp4", "f1_none"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(mv.run_id, "evaluation")}
    assert "evaluation/confusion_matrix.json" in artifacts and "evaluation/confusion_matrix.png" in artifacts
    matrix = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/evaluation/confusion_matrix.json")
    assert matrix["labels"] == list(CLASSES)
    assert sum(map(sum, matrix["matrix"])) == int(ev.confusion.to_numpy().sum())


def test_rerunning_a_range_replaces_that_range_only(spark, tables, registered, features_df):
    name, version, _ = registered
    promote_if_better(name, version, 1.0, champion_score=None)
    model, loaded = load_champion(name)
    assert loaded == version
    scores = score(model, in_range(features_df, day(1), day(3)), loaded)
    assert scores.columns == [
        "machineID",
        "datetime",
        "predicted_component",
        *[f"prob_{c}" for c in CLASSES],
        "model_version",
        "scoring_date",
    ]
    write_scores(tables, scores, "t_scores")
    first = {(r.machineID, r.datetime): r for r in tables.read("t_scores").collect()}
    assert len(first) == 3 * 16
    assert all(sum(r[f"prob_{c}"] for c in CLASSES) == pytest.approx(1.0) for r in first.values())
    # the predicted component is the most probable class, and mostly the true one
    assert all(max((r[f"prob_{c}"], c) for c in CLASSES)[1] == r.predicted_component for r in first.values())
    truth = {(r.machineID, r.datetime): r.label for r in features_df.collect()}
    hits = sum(r.predicted_component == truth[k] for k, r in first.items())
    assert hits / len(first) >= 0.8

    # re-run 2015-01-02 only, under another version label: day 1 keeps its rows untouched
    write_scores(tables, score(model, in_range(features_df, day(2), day(3)), "v-rerun"), "t_scores")
    after = tables.read("t_scores")
    by_day = {
        r.scoring_date: r["versions"]
        for r in after.groupBy("scoring_date")
        .agg({"model_version": "collect_set"})
        .withColumnRenamed("collect_set(model_version)", "versions")
        .collect()
    }
    assert by_day == {day(1): [version], day(2): ["v-rerun"]}
    assert after.count() == 3 * 16


@pytest.mark.slow
def test_one_vs_rest_scores_get_probabilities_too(spark, features_df):
    model = fit(features_df, train_settings(algorithm="gbt_ovr", max_iter=3, max_depth=3), SPEC)
    rows = score(model, features_df, "x").collect()
    assert all(sum(r[f"prob_{c}"] for c in CLASSES) == pytest.approx(1.0) for r in rows)
    assert all(max((r[f"prob_{c}"], c) for c in CLASSES)[1] == r.predicted_component for r in rows)


def test_a_class_missing_from_training_scores_with_probability_zero(spark, features_df):
    """A short history where comp4 never failed: the model knows four classes, scoring still fills five."""
    model = fit(features_df.where("label != 'comp4'"), train_settings(num_trees=5, max_depth=4), SPEC)
    rows = score(model, features_df, "x").collect()
    assert {r.prob_comp4 for r in rows} == {0.0}
    assert all(sum(r[f"prob_{c}"] for c in CLASSES) == pytest.approx(1.0) for r in rows)
    assert "comp4" not in {r.predicted_component for r in rows}
    assert len(rows) == features_df.count()

"""Train, evaluate, log and register the FAQ ranker as `faq@champion`.

Duplicates are split by original (test side held out); hyperparameter trials are scored
on a validation slice of the training side; the best trial is refitted on the whole
training side and measured once on the test side with the reference's metrics.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mlflow
import pandas as pd
from mlflow import MlflowClient

from refarch.faq.metrics import RankingReport
from refarch.faq.model import log_faq_model
from refarch.faq.ranker import FaqRanker
from refarch.faq.settings import Dataset, Settings
from refarch.faq.split import split_by_original
from refarch.faq.tuning import TrialResult, grid, run_trials
from refarch.runtime.config import Config
from refarch.runtime.tracking import registered_model_name

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

MODEL_NAME = "faq"
ALIAS = "champion"


@dataclass(frozen=True)
class TrainResult:
    ranker: FaqRanker
    test: RankingReport
    evaluation: pd.DataFrame  # one row per test question: rank of its true original
    trials: list[TrialResult]
    run_id: str
    model_uri: str
    registered_name: str
    version: str

    def trials_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {**t.params.as_dict(), "acc_at_1": t.acc_at_1, "acc_at_3": t.acc_at_3, "mean_rank": t.mean_rank}
                for t in self.trials
            ]
        )


def train_faq(
    originals: pd.DataFrame,
    duplicates: pd.DataFrame,
    settings: Settings,
    config: Config,
    *,
    dataset: Dataset,
    spark: SparkSession | None,
    promote: bool,
) -> TrainResult:
    """Split, tune (on Spark if given), refit, evaluate on the test side, log to MLflow, register.

    `dataset` picks the text cleaning (settings.cleaning) and tags the run; `promote` moves
    the alias champion to the new version.
    """
    cleaning = settings.cleaning.of(dataset)
    train, test = split_by_original(duplicates, test_size=settings.test_size, seed=settings.seed)
    fit_part, valid = split_by_original(train, test_size=settings.valid_size, seed=settings.seed + 1)
    trials = run_trials(grid(settings.grid.model_dump()), originals, fit_part, valid, cleaning, spark)
    best = trials[0].params
    ranker = FaqRanker(best, cleaning=cleaning).fit(originals, train)
    report = ranker.evaluate(test)
    evaluation = ranker.rank_table(test)
    log.info(
        "test: Acc@1 %.3f Acc@3 %.3f mean rank %.2f over %d originals",
        report.acc_at_1,
        report.acc_at_3,
        report.mean_rank,
        report.n_originals,
    )

    name = registered_model_name(config, MODEL_NAME)
    with mlflow.start_run(run_name="faq-train") as run:
        mlflow.set_tags({"pipeline": "faq", "dataset": dataset, "cleaning": cleaning})
        mlflow.log_params(
            {
                **best.as_dict(),
                "n_trials": len(trials),
                "test_size": settings.test_size,
                "min_text": settings.min_text,
                "min_dupes": settings.min_dupes,
            }
        )
        mlflow.log_metrics(
            {
                "acc_at_1": report.acc_at_1,
                "acc_at_3": report.acc_at_3,
                "mean_rank": report.mean_rank,
                "n_originals": report.n_originals,
                "n_test_questions": report.n_questions,
                "n_train_duplicates": len(train),
                "valid_acc_at_1": trials[0].acc_at_1,
            }
        )
        mlflow.log_dict(
            {
                "trials": [
                    {**t.params.as_dict(), "acc_at_1": t.acc_at_1, "acc_at_3": t.acc_at_3, "mean_rank": t.mean_rank}
                    for t in trials
                ]
            },
            "trials.json",
        )
        info = log_faq_model(ranker, top_n=settings.top_n)
        version = mlflow.register_model(info.model_uri, name).version
    if promote:
        MlflowClient().set_registered_model_alias(name, ALIAS, version)
        log.info("registered %s version %s as @%s", name, version, ALIAS)
    return TrainResult(ranker, report, evaluation, trials, run.info.run_id, info.model_uri, name, str(version))


def model_uri(config: Config, alias: str = ALIAS) -> str:
    return f"models:/{registered_model_name(config, MODEL_NAME)}@{alias}"


def describe(result: TrainResult) -> str:
    return json.dumps({"version": result.version, **result.test.as_dict()})

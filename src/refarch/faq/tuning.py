"""Hyperparameter trials, run in parallel on Spark executors (one trial per task) or in-process.

The model stays scikit-learn: Spark only fans the independent trials out, which is where
it helps (each trial is a full fit). The small training frames travel inside the task
closure; each task fits on the training side and scores on the validation side.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from refarch.faq.ranker import FaqRanker, RankerParams
from refarch.faq.settings import Cleaning

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialResult:
    params: RankerParams
    acc_at_1: float
    acc_at_3: float
    mean_rank: float

    def sort_key(self) -> tuple[float, float, float]:
        """Best first: highest Acc@1, then Acc@3, then lowest mean rank."""
        return (-self.acc_at_1, -self.acc_at_3, self.mean_rank)


def grid(values: Mapping[str, Sequence[Any]]) -> list[RankerParams]:
    """Every combination of the given values; one key per RankerParams field (conf/faq.yml `grid`)."""
    known = set(RankerParams.__dataclass_fields__)
    unknown, missing = set(values) - known, known - set(values)
    if unknown or missing:
        raise ValueError(
            f"hyperparameters: unknown {sorted(unknown)}, missing {sorted(missing)}; expected {sorted(known)}"
        )
    keys = sorted(values)
    return [
        RankerParams(**dict(zip(keys, combo, strict=True))) for combo in itertools.product(*(values[k] for k in keys))
    ]


def evaluate_trial(
    params: RankerParams, originals: pd.DataFrame, train: pd.DataFrame, valid: pd.DataFrame, cleaning: Cleaning
) -> TrialResult:
    report = FaqRanker(params, cleaning=cleaning).fit(originals, train).evaluate(valid)
    return TrialResult(params, report.acc_at_1, report.acc_at_3, report.mean_rank)


def run_trials(
    trials: Sequence[RankerParams],
    originals: pd.DataFrame,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    cleaning: Cleaning,
    spark: SparkSession | None = None,
) -> list[TrialResult]:
    """All trials, best first; on Spark when a session is given, else one after the other."""
    if not trials:
        raise ValueError("no hyperparameter trials to run")
    if spark is None:
        results = [evaluate_trial(t, originals, train, valid, cleaning) for t in trials]
    else:
        results = _run_on_spark(spark, trials, originals, train, valid, cleaning)
    results.sort(key=TrialResult.sort_key)
    for r in results:
        log.info("trial %s: Acc@1 %.3f Acc@3 %.3f mean rank %.2f", r.params, r.acc_at_1, r.acc_at_3, r.mean_rank)
    return results


def _run_on_spark(
    spark: SparkSession,
    trials: Sequence[RankerParams],
    originals: pd.DataFrame,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    cleaning: Cleaning,
) -> list[TrialResult]:
    columns = ["id", "answer_id", "text"]
    originals, train, valid = originals[columns], train[columns], valid[columns]
    specs = pd.DataFrame({"trial": [json.dumps(t.as_dict()) for t in trials]})

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            rows = []
            for spec in batch["trial"]:
                r = evaluate_trial(RankerParams(**json.loads(spec)), originals, train, valid, cleaning)
                rows.append({"trial": spec, "acc_at_1": r.acc_at_1, "acc_at_3": r.acc_at_3, "mean_rank": r.mean_rank})
            yield pd.DataFrame(rows, columns=["trial", "acc_at_1", "acc_at_3", "mean_rank"])

    df = spark.createDataFrame(specs).repartition(len(trials))
    out = df.mapInPandas(run, schema="trial string, acc_at_1 double, acc_at_3 double, mean_rank double").toPandas()
    return [
        TrialResult(RankerParams(**json.loads(row.trial)), row.acc_at_1, row.acc_at_3, row.mean_rank)
        for row in out.itertuples()
    ]

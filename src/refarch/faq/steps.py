"""One function per FAQ notebook: what each notebook runs, with its inputs as explicit arguments.

The notebooks bootstrap (parameters, settings, Spark), call these, and show what they return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from refarch.faq.settings import Dataset, Settings

if TYPE_CHECKING:
    from refarch.faq.ingest import IngestResult
    from refarch.faq.train import TrainResult
    from refarch.runtime.config import Config
    from refarch.runtime.tables import Tables


def prepare(
    tables: Tables,
    settings: Settings,
    config: Config,
    *,
    dataset: Dataset,
    questions_path: str,
    duplicates_path: str,
    answers_path: str,
) -> IngestResult:
    """01_prepare: read the dataset (the user's files when given), quarantine, prepare, write the tables."""
    from refarch.faq.ingest import ingest, load_raw

    raw = load_raw(dataset, settings, config, questions_path, duplicates_path, answers_path)
    return ingest(tables, raw, settings, dataset)


@dataclass(frozen=True)
class Trained:
    result: TrainResult
    worst: pd.DataFrame  # the test questions ranked worst, with their text


def train(
    tables: Tables,
    settings: Settings,
    config: Config,
    *,
    dataset: Dataset,
    parallel_trials: bool,
    promote: bool,
    n_worst: int = 20,
) -> Trained:
    """02_train: train on the prepared tables, register the model, write the per-question evaluation."""
    from refarch.faq.train import train_faq

    spark = tables.spark
    originals = tables.read(settings.tables.originals).toPandas()
    duplicates = tables.read(settings.tables.duplicates).toPandas()
    result = train_faq(
        originals,
        duplicates,
        settings,
        config,
        dataset=dataset,
        spark=spark if parallel_trials else None,
        promote=promote,
    )
    tables.write(spark.createDataFrame(result.evaluation), settings.tables.evaluation)
    worst = result.evaluation.sort_values("rank", ascending=False).head(n_worst)
    return Trained(result, worst.merge(duplicates[["id", "text"]], on="id"))


def ask(settings: Settings, config: Config, *, question: str) -> pd.DataFrame:
    """03_ask: the registered champion's `settings.top_n` best originals for one question."""
    import mlflow

    from refarch.faq.train import model_uri

    model = mlflow.pyfunc.load_model(model_uri(config))
    (answer,) = model.predict([{"question": question, "top_n": settings.top_n}])
    return pd.DataFrame([m.model_dump() for m in answer.matches], columns=["id", "text", "probability"])

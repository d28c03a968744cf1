"""One function per notebook step, so the notebooks hold parameters, calls and plots only.

Functions take what they use (tables, settings, the config where the target matters) and
parameter values by keyword; they return what the notebook shows.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from refarch.datasets.download import DownloadError
from refarch.datasets.maintenance import ERROR_TYPES, KINDS, SENSORS, fetch_files, generate, write_csv
from refarch.maintenance.features import build_features, feature_columns
from refarch.maintenance.ingest import ingest_all, table_names
from refarch.maintenance.labels import CLASSES, NO_FAILURE, add_labels
from refarch.maintenance.registry import PROMOTION_METRIC, Promotion, current_champion, log_and_register
from refarch.maintenance.registry import promote_if_better as _promote
from refarch.maintenance.score import in_range, load_champion, score, write_scores
from refarch.maintenance.train import (
    Evaluation,
    evaluate,
    evaluate_counts,
    feature_importances,
    fit,
    label_index,
    temporal_split,
)
from refarch.runtime.params import ParameterError
from refarch.runtime.tracking import registered_model_name

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from refarch.maintenance.settings import Settings
    from refarch.runtime.config import Config
    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)


def check_range(start: dt.date, end: dt.date, start_name: str = "start_date", end_name: str = "to_date") -> None:
    """A date range must not be empty; the error names the parameter."""
    if end <= start:
        raise ParameterError(f"parameter '{end_name}': {end} must be after {start_name} {start}")


def date_range(start: dt.date, end: dt.date, days: int | None) -> tuple[dt.date, dt.date]:
    """[start, end), or the `days` days just before `end` when `days` is given (a scheduled run).

    The daily scoring job passes to_date = the trigger's date and days = 1: it scores the day
    that just ended, whatever day the schedule fires.
    """
    if days is not None:
        start = end - dt.timedelta(days=days)
    check_range(start, end)
    return start, end


def model_name(config: Config, settings: Settings) -> str:
    """The registered model's name on this target (three-part on Unity Catalog)."""
    return registered_model_name(config, settings.model_name)


# ---- 01_ingest ----------------------------------------------------------------------


def raw_files(
    config: Config, settings: Settings, *, dataset: str, source_dir: str, start: dt.date, end: dt.date
) -> dict[str, Path]:
    """The five CSV files: generated into the cache, the user's folder, or the public download.

    Nothing here needs Spark, so a wrong folder fails in a second, naming `source_dir`.
    """
    cache = Path(config.target.paths.datasets)
    if dataset == "generated":
        if source_dir:
            raise ParameterError("parameter 'source_dir' only applies to the public datasets (pdm100, pdm1000)")
        gen = settings.generator
        folder = cache / "maintenance" / f"generated-{gen.machines}m-{start}-{end}-s{gen.seed}"
        files = {k: folder / f"PdM_{k}.csv" for k in KINDS}
        if not all(f.is_file() for f in files.values()):
            files = write_csv(generate(gen.machines, start, end, seed=gen.seed), folder)
        return files
    if not source_dir:
        return fetch_files(dataset, cache)
    folder = Path(source_dir).expanduser()
    if not folder.is_dir():
        raise ParameterError(f"parameter 'source_dir': {folder} is not a folder")
    try:
        files = fetch_files(dataset, cache, folder)
    except DownloadError as err:
        raise ParameterError(f"parameter 'source_dir': {err}") from None
    log.info("%s from %s: %s", dataset, folder, ", ".join(p.name for p in files.values()))
    return files


def ingest(tables: Tables, settings: Settings, files: dict[str, Path]) -> pd.DataFrame:
    """Write the five raw tables (bad rows to quarantine); one line per file: good and bad rows."""
    reports = ingest_all(tables.spark, tables, files, table_names(settings.table_prefix), settings.max_bad_share)
    return pd.DataFrame(
        [{"file": r.source, "good rows": r.good, "quarantined": r.bad, "bad share": r.bad_share} for r in reports]
    )


# ---- 02_features, explore_raw_data -----------------------------------------------------


def raw_tables(tables: Tables, settings: Settings) -> dict[str, DataFrame]:
    """The five raw tables by kind (telemetry, errors, maint, machines, failures)."""
    names = table_names(settings.table_prefix)
    missing = [n for n in names.values() if not tables.exists(n)]
    if missing:
        raise FileNotFoundError(f"raw table(s) {', '.join(missing)} missing: run notebooks/maintenance/01_ingest first")
    return {k: tables.read(n) for k, n in names.items()}


def build_feature_table(tables: Tables, settings: Settings, *, start: dt.date, end: dt.date, table: str) -> DataFrame:
    """Features and labels of [start, end) written to `table` (replaced); returns the table."""
    conf = settings.features
    raw = raw_tables(tables, settings)
    rows = build_features(raw["telemetry"], raw["errors"], raw["maint"], raw["machines"], start, end, conf.spec())
    tables.write(add_labels(rows, raw["failures"], conf.label_horizon_hours), table)
    return tables.read(table)


# ---- 03_train ---------------------------------------------------------------------------


@dataclass
class TrainingResult:
    evaluation: Evaluation
    importances: pd.Series
    version: str
    promotion: Promotion
    run_id: str


def train_and_promote(
    tables: Tables,
    config: Config,
    settings: Settings,
    *,
    features_table: str,
    split_date: dt.date,
    run_name: str = "train",
) -> TrainingResult:
    """Fit on rows before split_date, test after, log and register; `champion` only if better."""
    import mlflow

    spec = settings.features.spec()
    train, test = temporal_split(tables.read(features_table), split_date)
    test = label_index(test).cache()
    if test.limit(1).count() == 0:
        raise ParameterError(f"parameter 'split_date': no feature rows on or after {split_date} to test on")
    name = model_name(config, settings)
    with mlflow.start_run(run_name=run_name) as run:
        model = fit(train, settings.train, spec)
        evaluation = evaluate(model, test)
        importances = feature_importances(model, spec)
        params = {**settings.train.model_dump(), "split_date": str(split_date), "features_table": features_table}
        version = log_and_register(model, evaluation, importances, params, name, test)
        champion_score = _champion_score(name, test)
        promotion = _promote(name, version, evaluation.pooled[PROMOTION_METRIC], champion_score)
        mlflow.set_tags({"promoted": str(promotion.promoted), "promotion": promotion.reason})
    test.unpersist()
    return TrainingResult(evaluation, importances, version, promotion, run.info.run_id)


def _champion_score(name: str, test: DataFrame) -> float | None:
    """The current champion's score on this test period (None when there is no champion)."""
    if current_champion(name) is None:
        return None
    model, version = load_champion(name)
    result = evaluate(model, test).pooled[PROMOTION_METRIC]
    log.info("champion version %s scores %s %.4f on this test period", version, PROMOTION_METRIC, result)
    return result


# ---- 04_score ---------------------------------------------------------------------------


def score_range(
    tables: Tables,
    config: Config,
    settings: Settings,
    *,
    features_table: str,
    output_table: str,
    start: dt.date,
    end: dt.date,
) -> DataFrame:
    """Score [start, end) with the champion; replaces those days in `output_table`; returns the new rows."""
    model, version = load_champion(model_name(config, settings))
    rows = in_range(tables.read(features_table), start, end)
    if rows.limit(1).count() == 0:
        raise ParameterError(f"parameter 'start_date': no feature rows in [{start}, {end}) of '{features_table}'")
    write_scores(tables, score(model, rows, version), output_table)
    return in_range(tables.read(output_table), start, end)


# ---- explore_features -----------------------------------------------------------------


@dataclass
class FeatureProfile:
    by_label: pd.DataFrame  # rows and the mean of every feature, one column per label
    sample: pd.DataFrame  # every failure row and a small share of the `none` rows
    columns: list[str]  # the long-window sensor means and error counts, to plot by label


def feature_profile(tables: Tables, settings: Settings, *, table: str, none_share: float = 0.02) -> FeatureProfile:
    """How the features differ between labels: means per label, and a sample to plot."""
    from pyspark.sql import functions as F

    conf = settings.features
    features = tables.read(table)
    means = [F.avg(c).alias(c) for c in feature_columns(conf.spec())]
    by_label = features.groupBy("label").agg(F.count("*").alias("rows"), *means).orderBy("label").toPandas()
    fractions = {c: (none_share if c == NO_FAILURE else 1.0) for c in CLASSES}
    sample = features.sampleBy("label", fractions, seed=1).toPandas()
    columns = [f"{s}_mean_{conf.long_hours}h" for s in SENSORS]
    columns += [f"{e}_count_{conf.error_hours}h" for e in ERROR_TYPES]
    return FeatureProfile(by_label.set_index("label").T, sample, columns)


# ---- explore_model ----------------------------------------------------------------------


@dataclass
class LoggedEvaluation:
    """What 03_train logged for one registered version."""

    name: str
    version: str
    metrics: pd.Series
    confusion: pd.DataFrame
    per_class: pd.DataFrame
    importances: pd.Series


def logged_evaluation(config: Config, settings: Settings, *, alias: str) -> LoggedEvaluation:
    """The test-period evaluation logged with the version behind `alias` (e.g. `champion`)."""
    import mlflow

    name = model_name(config, settings)
    version = mlflow.MlflowClient().get_model_version_by_alias(name, alias)
    run = f"runs:/{version.run_id}/evaluation"
    confusion = mlflow.artifacts.load_dict(f"{run}/confusion_matrix.json")
    labels = confusion["labels"]
    matrix = pd.DataFrame(
        confusion["matrix"], index=pd.Index(labels, name="true"), columns=pd.Index(labels, name="predicted")
    )
    per_class = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"{run}/per_class.csv")), index_col=0)
    importances = pd.Series(mlflow.artifacts.load_dict(f"{run}/feature_importances.json"), name="importance")
    metrics = pd.Series(mlflow.get_run(version.run_id).data.metrics).sort_index()
    return LoggedEvaluation(name, str(version.version), metrics, matrix, per_class, importances)


# ---- explore_scoring ----------------------------------------------------------------------


def scores_against_labels(tables: Tables, *, features_table: str, output_table: str) -> tuple[DataFrame, Evaluation]:
    """Scores joined with the labels of the scored rows (what happened), and the metrics of that."""
    from pyspark.sql import functions as F

    scores = tables.read(output_table)
    truth = tables.read(features_table).select("machineID", "datetime", "label")
    joined = scores.join(truth, ["machineID", "datetime"])
    counts = joined.groupBy("label", F.col("predicted_component").alias("predicted")).count().toPandas()
    return joined, evaluate_counts(counts)

"""One function per notebook step, so the notebooks hold parameters, calls and plots only."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from refarch.datasets.maintenance import KINDS, fetch_files, generate, write_csv
from refarch.maintenance import CLASSES
from refarch.maintenance.features import build_features
from refarch.maintenance.ingest import ingest_all, table_names
from refarch.maintenance.labels import add_labels
from refarch.maintenance.registry import PROMOTION_METRIC, Promotion, current_champion, log_and_register
from refarch.maintenance.registry import promote_if_better as _promote
from refarch.maintenance.score import in_range, load_champion, score, write_scores
from refarch.maintenance.settings import MaintenanceConf
from refarch.maintenance.train import Evaluation, evaluate, feature_importances, fit, label_index, temporal_split
from refarch.runtime.params import ParameterError
from refarch.runtime.quality import QualityReport
from refarch.runtime.tracking import registered_model_name

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from refarch.runtime.config import Config
    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

DATASETS = ("generated", "pdm100", "pdm1000")


def settings(config: Config) -> MaintenanceConf:
    return config.section(MaintenanceConf)


def check_range(start: dt.date, end: dt.date, start_name: str = "start_date", end_name: str = "to_date") -> None:
    """A date range must not be empty; the error names the parameter."""
    if end <= start:
        raise ParameterError(f"parameter '{end_name}': {end} must be after {start_name} {start}")


def raw_files(
    config: Config, dataset: str, start: dt.date, end: dt.date, machines: int, source_dir: str = ""
) -> dict[str, Path]:
    """The five CSV files: generated into the cache, the user's folder, or the public download."""
    cache = config.home / "datasets"
    if dataset == "generated":
        if source_dir:
            raise ParameterError("parameter 'source_dir' only applies to the public datasets (pdm100, pdm1000)")
        conf = settings(config).generator
        folder = cache / "maintenance" / f"generated-{machines}m-{start}-{end}-s{conf.seed}"
        files = {k: folder / f"PdM_{k}.csv" for k in KINDS}
        if not all(f.is_file() for f in files.values()):
            files = write_csv(generate(machines, start, end, seed=conf.seed), folder)
        return files
    if dataset not in DATASETS:
        raise ParameterError(f"parameter 'dataset': '{dataset}' is not one of {', '.join(DATASETS)}")
    return fetch_files(dataset, cache, source_dir or None)


def ingest(tables: Tables, config: Config, files: dict[str, Path]) -> list[QualityReport]:
    conf = settings(config)
    return ingest_all(tables.spark, tables, files, table_names(conf.table_prefix), conf.max_bad_share)


def raw_tables(tables: Tables, config: Config) -> dict[str, DataFrame]:
    names = table_names(settings(config).table_prefix)
    missing = [n for n in names.values() if not tables.exists(n)]
    if missing:
        raise FileNotFoundError(f"raw table(s) {', '.join(missing)} missing: run notebooks/maintenance/01_ingest first")
    return {k: tables.read(n) for k, n in names.items()}


def build_feature_table(tables: Tables, config: Config, start: dt.date, end: dt.date, table: str) -> DataFrame:
    """Features and labels of [start, end) written to `table` (replaced); returns the table."""
    conf = settings(config).features
    raw = raw_tables(tables, config)
    rows = build_features(raw["telemetry"], raw["errors"], raw["maint"], raw["machines"], start, end, conf.spec())
    tables.write(add_labels(rows, raw["failures"], conf.label_horizon_hours), table)
    return tables.read(table)


@dataclass
class TrainingResult:
    evaluation: Evaluation
    importances: Any
    version: str
    promotion: Promotion
    run_id: str


def train_and_promote(
    tables: Tables, config: Config, features_table: str, split_date: dt.date, run_name: str = "train"
) -> TrainingResult:
    """Fit on rows before split_date, test after, log and register; `champion` only if better."""
    import mlflow

    conf = settings(config)
    features = tables.read(features_table)
    train, test = temporal_split(features, split_date)
    test = label_index(test).cache()
    if test.limit(1).count() == 0:
        raise ParameterError(f"parameter 'split_date': no feature rows on or after {split_date} to test on")
    name = registered_model_name(config, conf.model_name)
    with mlflow.start_run(run_name=run_name) as run:
        model = fit(train, conf.train, conf.features.spec())
        evaluation = evaluate(model, test)
        importances = feature_importances(model, conf.features.spec())
        params = {**conf.train.model_dump(), "split_date": str(split_date), "features_table": features_table}
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


def score_range(
    tables: Tables, config: Config, features_table: str, output_table: str, start: dt.date, end: dt.date
) -> DataFrame:
    """Score [start, end) with the champion; replaces those days in `output_table`; returns the new rows."""
    model, version = load_champion(registered_model_name(config, settings(config).model_name))
    rows = in_range(tables.read(features_table), start, end)
    if rows.limit(1).count() == 0:
        raise ParameterError(f"parameter 'start_date': no feature rows in [{start}, {end}) of '{features_table}'")
    write_scores(tables, score(model, rows, version), output_table)
    return in_range(tables.read(output_table), start, end)


__all__ = ["CLASSES", "DATASETS", "build_feature_table", "check_range", "ingest", "raw_files", "score_range"]

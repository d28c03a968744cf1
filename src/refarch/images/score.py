"""Batch scoring of a folder of images on Spark: `binaryFile` source, an iterator UDF, a table per date.

The champion is copied once to the staging folder (a volume on Databricks) where every worker
reads it; `mapInPandas` runs an iterator function that loads it once per Python worker process
(kept across tasks, as Spark reuses its workers) and scores Arrow batches of `batch_size` files in
one forward pass each. A file that is no readable image (empty, not an image, corrupt, too big)
gets a reason instead of classes and goes to the quarantine table. Both tables are partitioned by
`scoring_date`; a re-run of a date replaces that date's rows and nothing else.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pandas as pd

from refarch.images.preprocess import MAX_IMAGE_BYTES
from refarch.images.register import CHAMPION
from refarch.images.settings import Settings
from refarch.runtime.quality import QualityReport, TooManyBadRows, split_by_rules
from refarch.runtime.tracking import registered_model_name

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from refarch.images.model import ImageClassifier
    from refarch.runtime.config import Config
    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

PARTITION = "scoring_date"
# why a file is quarantined, in the order the rules are tried (refarch.images.preprocess.ImageRejected reasons)
REASONS = ("empty_file", "too_large", "too_many_pixels", "not_an_image", "corrupt_image")
SCORED_SCHEMA = (
    "path string, modification_time timestamp, length long, label string, class_index int, probability double, "
    "top_k array<struct<index:int,label:string,probability:double>>, error_reason string, error string"
)


class NoChampionError(LookupError):
    """There is no model with the `champion` alias to score with."""


class NoImagesError(FileNotFoundError):
    """The folder to score holds no file."""


@dataclass(frozen=True)
class StagedModel:
    name: str
    version: str
    path: str  # a folder every Spark worker can read


@dataclass(frozen=True)
class ScoreResult:
    model: StagedModel
    scoring_date: dt.date
    files: int
    scored: int
    quarantined: int
    labels: pd.DataFrame  # label, images: the most frequent top-1 labels of the run
    quarantine: pd.DataFrame  # path, reason, error of this run's quarantined files


def stage_champion(config: Config, settings: Settings) -> StagedModel:
    """Copy `<model_name>@champion` to `paths.staging/<name>-v<version>` (once per version)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = registered_model_name(config, settings.model_name)
    try:
        version = str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        raise NoChampionError(f"no '{CHAMPION}' version of model '{name}': run the register task first") from None
    target = Path(settings.paths.staging) / f"{name}-v{version}"
    if not (target / "MLmodel").is_file():
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
        partial.mkdir(parents=True)
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(partial))
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    log.info("scoring with %s version %s from %s", name, version, target)
    return StagedModel(name, version, str(target))


# ---- on the Spark workers -------------------------------------------------------------

_LOADED: dict[str, ImageClassifier] = {}


def loaded_model(path: str, threads: int) -> ImageClassifier:
    """The model at `path`, loaded once per Python worker process (a new path replaces the old one)."""
    model = _LOADED.get(path)
    if model is None:
        import mlflow
        import torch

        torch.set_num_threads(threads)
        model = mlflow.pyfunc.load_model(path).unwrap_python_model()
        _LOADED.clear()
        _LOADED[path] = model
    return model


def scored_frame(chunk: pd.DataFrame, model: ImageClassifier, top_k: int) -> pd.DataFrame:
    """One row per file of `chunk` (path, modificationTime, length, content): classes, or the reason it failed."""
    from refarch.images.preprocess import ImageRejected

    results = model.classify_files(chunk["content"].tolist(), top_k)
    names = ("label", "class_index", "probability", "top_k", "error_reason", "error")
    columns: dict[str, list[Any]] = {c: [] for c in names}
    for result in results:  # None, not NaN, where a value is missing: Arrow needs it for the nested column
        values: tuple[Any, ...]
        if isinstance(result, ImageRejected):
            values = (None, None, None, None, result.reason, str(result))
        else:
            best = result.classes[0]
            values = (best.label, best.index, best.probability, [c.model_dump() for c in result.classes], None, None)
        for name, value in zip(names, values, strict=True):
            columns[name].append(value)
    out = pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in columns.items()})
    out.insert(0, "path", chunk["path"].to_numpy())
    out.insert(1, "modification_time", chunk["modificationTime"].to_numpy())
    out.insert(2, "length", chunk["length"].to_numpy())
    return out


def classify_batches(
    model_path: str, top_k: int, batch_size: int, threads: int
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The `mapInPandas` function: the model loaded once per worker, a forward pass per `batch_size` files."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = loaded_model(model_path, threads)
        for batch in batches:
            for start in range(0, len(batch), batch_size):
                yield scored_frame(batch.iloc[start : start + batch_size], model, top_k)

    return run


# ---- on the driver ----------------------------------------------------------------------


def read_folder(spark: SparkSession, path: str) -> DataFrame:
    """Every file under `path` (subfolders included): path, modificationTime, length, content (read lazily)."""
    return spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(path)


@contextlib.contextmanager
def _session_conf(spark: SparkSession, values: dict[str, str]) -> Iterator[None]:
    saved = {k: spark.conf.get(k, None) for k in values}
    for k, v in values.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def _empty_files(spark: SparkSession, input_files: list[str], listing: DataFrame, n_listed: int) -> list[str]:
    """Files of the folder that file sources skip because they have no byte (binaryFile never yields them)."""
    if len(input_files) <= n_listed:
        return []
    listed = {_comparable(r.path) for r in listing.select("path").collect()}
    return sorted(p for p in (_as_path_column(f) for f in input_files) if _comparable(p) not in listed)


def _as_path_column(uri: str) -> str:
    """`file:///tmp/x` (a listed URI) as the `path` column writes it: `file:/tmp/x`."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*):///", r"\1:/", uri)


def _comparable(path: str) -> str:
    return unquote(_as_path_column(path))


def _parallelism(spark: SparkSession) -> int:
    try:
        return int(spark.sparkContext.defaultParallelism)
    except Exception:  # no SparkContext on shared or serverless compute
        return int(spark.conf.get("spark.sql.shuffle.partitions", "8"))


def score_folder(
    tables: Tables,
    settings: Settings,
    model: StagedModel,
    *,
    images_path: str,
    scoring_date: dt.date,
) -> ScoreResult:
    """Score every file under `images_path` with the staged model; write predictions and quarantine for the date."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark, s = tables.spark, settings.scoring
    files = read_folder(spark, images_path)
    listing = files.select("path", "modificationTime", "length")  # no content is read for these
    n_listed = listing.count()
    empty = _empty_files(spark, files.inputFiles(), listing, n_listed)
    n_files = n_listed + len(empty)
    if n_files == 0:
        raise NoImagesError(f"{images_path}: no file to score")
    n_small = listing.where(F.col("length") <= MAX_IMAGE_BYTES).count()
    unread = listing.where(F.col("length") > MAX_IMAGE_BYTES).select(
        "path",
        F.col("modificationTime").alias("modification_time"),
        "length",
        *[F.lit(None).cast(t).alias(c) for c, t in _RESULT_COLUMNS],
        F.lit("too_large").alias("error_reason"),
        F.format_string(f"the image file has %d bytes, over the limit of {MAX_IMAGE_BYTES}", "length").alias("error"),
    )
    if empty:
        rows = [(path, None, 0, None, None, None, None, "empty_file", "the file is empty") for path in empty]
        unread = unread.unionByName(spark.createDataFrame(rows, unread.schema))
    partitions = max(_parallelism(spark), math.ceil(n_small / s.files_per_partition))
    batches = classify_batches(model.path, s.top_k, s.batch_size, s.threads_per_task)
    with _session_conf(spark, {"spark.sql.execution.arrow.maxRecordsPerBatch": str(s.batch_size)}):
        small = files.where(F.col("length") <= MAX_IMAGE_BYTES).repartition(partitions)
        scored = small.mapInPandas(batches, SCORED_SCHEMA).unionByName(unread)
        scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            return _write(tables, settings, model, scored, images_path, scoring_date, n_files)
        finally:
            scored.unpersist()


_RESULT_COLUMNS = (
    ("label", "string"),
    ("class_index", "int"),
    ("probability", "double"),
    ("top_k", "array<struct<index:int,label:string,probability:double>>"),
)


def _write(
    tables: Tables,
    settings: Settings,
    model: StagedModel,
    scored: DataFrame,
    images_path: str,
    scoring_date: dt.date,
    n_files: int,
) -> ScoreResult:
    from pyspark.sql import functions as F

    rules = {reason: F.col("error_reason") == reason for reason in REASONS}
    rules["unreadable"] = F.col("error_reason").isNotNull()  # a reason this code does not know yet
    good, bad = split_by_rules(scored, rules)
    n_good = good.count()
    date = F.lit(scoring_date.isoformat()).cast("date").alias(PARTITION)
    quarantined = bad.select(
        F.col("path"),
        F.col("length").cast("string").alias("length"),
        F.col("modification_time").cast("string").alias("modification_time"),
        F.col("error"),
        F.col("reason"),
        F.lit(images_path).alias("source"),
        F.current_timestamp().alias("quarantined_at"),
        date,
    )
    n_bad = replace_date(tables, quarantined, settings.tables.quarantine, scoring_date)
    report = QualityReport(source=images_path, good=n_good, bad=n_bad)
    log.info("%s: %d images scored, %d files quarantined in %s", images_path, n_good, n_bad, settings.tables.quarantine)
    if report.bad_share > settings.scoring.max_bad_share:
        raise TooManyBadRows(
            f"{images_path}: {n_bad} of {n_files} files ({report.bad_share:.1%}) are no readable image, above the "
            f"limit of {settings.scoring.max_bad_share:.1%}; see table '{settings.tables.quarantine}'"
        )
    predictions = good.select(
        "path",
        "modification_time",
        "length",
        "label",
        "class_index",
        "probability",
        "top_k",
        F.lit(model.name).alias("model_name"),
        F.lit(model.version).alias("model_version"),
        F.current_timestamp().alias("scored_at"),
        date,
    )
    tables.overwrite_partitions(predictions, settings.tables.predictions, [PARTITION])
    labels = (
        good.groupBy("label").count().withColumnRenamed("count", "images").orderBy(F.desc("images"), "label").limit(20)
    )
    return ScoreResult(
        model=model,
        scoring_date=scoring_date,
        files=n_files,
        scored=n_good,
        quarantined=n_bad,
        labels=labels.toPandas(),
        quarantine=bad.select("path", "reason", "error").orderBy("path").toPandas(),
    )


def replace_date(tables: Tables, df: DataFrame, table: str, scoring_date: dt.date) -> int:
    """Replace the rows of `scoring_date` in `table` by `df` (even when `df` is empty); the number written.

    A dynamic partition overwrite leaves a date alone when the new data has no row for it, so a
    re-run without bad files would keep the bad files of the first run: the table is rewritten
    (it holds quarantined files only, few) without that date's rows, plus the new ones.
    """
    from pyspark.sql import functions as F

    df = df.cache()
    count = df.count()
    combined = df
    if tables.exists(table):
        kept = tables.read(table).where(F.col(PARTITION) != F.lit(scoring_date.isoformat()).cast("date"))
        combined = kept.unionByName(df)
    tables.write(combined, table, partition_by=[PARTITION])
    df.unpersist()
    return count

"""Raw interactions -> typed `ratings` rows, with every malformed row kept aside with its reason.

Sources (MovieLens, a CSV, a table, the generator) all arrive with the canonical columns
user_id, item_id, rating, timestamp in any type; values are converted with `try_cast` so a
bad value becomes a reason, never an exception halfway through a job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from refarch.recommender.settings import SOURCES
from refarch.runtime.params import ParameterError, check_table_name

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from refarch.datasets.interactions import InteractionSpec
    from refarch.recommender.settings import GeneratorSettings, IngestSettings
    from refarch.runtime.quality import QualityReport
    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

INT_MAX = 2**31 - 1
RATINGS_SCHEMA = "user_id int, item_id int, rating double, timestamp long"


@dataclass(frozen=True)
class RatingRange:
    """Accepted ratings (inclusive); implicit weights use e.g. (0, inf)."""

    low: float
    high: float


def _try(col: str, sql_type: str) -> Column:
    from pyspark.sql import functions as F

    return F.expr(f"try_cast(`{col}` AS {sql_type})")


def _blank(col: str) -> Column:
    from pyspark.sql import functions as F

    return F.col(col).isNull() | (F.trim(F.col(col).cast("string")) == "")


def _epoch_seconds(col: str) -> Column:
    """Epoch seconds as given, or an ISO date/time turned into epoch seconds; null if neither."""
    from pyspark.sql import functions as F

    text = F.trim(F.col(col).cast("string"))
    as_number = F.expr(f"try_cast(try_cast(trim(cast(`{col}` AS STRING)) AS DOUBLE) AS BIGINT)")
    as_time = F.unix_timestamp(F.expr(f"try_to_timestamp(trim(cast(`{col}` AS STRING)))"))
    return F.when(text.rlike(r"^-?\d+(\.\d+)?$"), as_number).otherwise(as_time)


def rules(rating_range: RatingRange, columns: list[str]) -> dict[str, Column]:
    """Reason -> condition true for a bad row; the first match is the reason recorded."""
    from pyspark.sql import functions as F

    checks: dict[str, Column] = {}
    if "_extra" in columns:
        checks["too many fields"] = F.col("_extra")
    for c in ("user_id", "item_id", "rating", "timestamp"):
        checks[f"missing {c}"] = _blank(c)
    for c in ("user_id", "item_id"):
        as_long = _try(c, "BIGINT")
        as_double = _try(c, "DOUBLE")
        checks[f"non-numeric {c}"] = as_double.isNull()
        checks[f"{c} not a whole number"] = as_long.isNull() | (as_double != as_long.cast("double"))
        checks[f"{c} outside 0..{INT_MAX}"] = (as_long < 0) | (as_long > INT_MAX)
    rating = _try("rating", "DOUBLE")
    checks["non-numeric rating"] = rating.isNull() | F.isnan(rating)
    checks[f"rating outside {rating_range.low:g}..{rating_range.high:g}"] = (rating < rating_range.low) | (
        rating > rating_range.high
    )
    checks["bad timestamp"] = _epoch_seconds("timestamp").isNull()
    return checks


def clean_interactions(raw: DataFrame, rating_range: RatingRange) -> tuple[DataFrame, DataFrame]:
    """Split raw rows into typed good rows and bad rows (all source columns + `reason`).

    A repeated (user, item) pair keeps its latest row (highest timestamp, then highest
    rating); the older copies go to the bad rows as duplicates rather than disappearing.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from refarch.runtime.quality import split_by_rules

    good, bad = split_by_rules(raw, rules(rating_range, raw.columns))
    typed = good.select(
        _try("user_id", "BIGINT").cast("int").alias("user_id"),
        _try("item_id", "BIGINT").cast("int").alias("item_id"),
        _try("rating", "DOUBLE").alias("rating"),
        _epoch_seconds("timestamp").alias("timestamp"),
        *[F.col(c).alias(f"_raw_{c}") for c in raw.columns],  # kept for the quarantine, as given
    )
    latest = Window.partitionBy("user_id", "item_id").orderBy(
        F.col("timestamp").desc(), F.col("rating").desc(), *[F.col(f"_raw_{c}").desc() for c in raw.columns]
    )
    ranked = typed.withColumn("_copy", F.row_number().over(latest))
    keep = ranked.filter(F.col("_copy") == 1).select("user_id", "item_id", "rating", "timestamp")
    dupes = ranked.filter(F.col("_copy") > 1).select(
        *[F.col(f"_raw_{c}").cast("string").alias(c) for c in raw.columns],
        F.lit("duplicate (user_id, item_id): a later row is kept").alias("reason"),
    )
    bad_all = bad.select(*[F.col(c).cast("string") for c in raw.columns], "reason").unionByName(dupes)
    return keep, bad_all


def to_raw(df: DataFrame) -> DataFrame:
    """Keep only the canonical columns (plus `_extra`/`_line` if a text loader added them)."""
    keep = [c for c in ("user_id", "item_id", "rating", "timestamp", "_extra", "_line") if c in df.columns]
    return df.select(*keep)


def ingest(
    tables: Tables,
    raw: DataFrame,
    ratings_table: str,
    quarantine_table: str,
    rating_range: RatingRange,
    max_bad_share: float,
    source: str,
) -> QualityReport:
    """Write good rows to `ratings_table` and bad rows to `quarantine_table`, logging both counts.

    The share of bad rows is checked before the ratings table is replaced, so a broken
    file fails the task and leaves yesterday's ratings in place.
    """
    from pyspark import StorageLevel

    from refarch.runtime.quality import quarantine

    raw = to_raw(raw).persist(StorageLevel.MEMORY_AND_DISK)  # read or generated once, checked twice
    good, bad = clean_interactions(raw, rating_range)
    good = good.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        n_good = good.count()
        report = quarantine(tables, bad, quarantine_table, source, n_good, max_bad_share)
        tables.write(good, ratings_table)
    finally:
        good.unpersist()
        raw.unpersist()
    return report


def rating_range_for(conf: IngestSettings) -> RatingRange:
    """MovieLens sizes bring their own scale (half stars from 0.5 on 10m/20m); others use the conf."""
    if conf.dataset.startswith("movielens-"):
        from refarch.datasets.movielens import movielens_size

        size = movielens_size(conf.dataset)
        return RatingRange(size.rating_min, size.rating_max)
    return RatingRange(conf.rating_min, conf.rating_max)


def generator_spec(conf: GeneratorSettings) -> InteractionSpec:
    """The generator's spec: items scale with users; per-user counts stay below what the items allow."""
    from refarch.datasets.interactions import InteractionSpec

    items = max(50, round(conf.items_per_user * conf.n_users))
    return InteractionSpec(
        n_users=conf.n_users,
        n_items=items,
        mean_per_user=min(conf.mean_per_user, items / 3),
        min_per_user=min(conf.min_per_user, items // 4),
        seed=conf.seed,
    )


def read_source(
    spark: SparkSession,
    tables: Tables,
    conf: IngestSettings,
    dataset_path: str,
    verify_checksum: bool,
) -> DataFrame:
    """The raw interactions of `conf.dataset` with canonical column names (any types).

    generated: the generator sized by `conf.generator`; movielens-*: the GroupLens zip (cache,
    or `dataset_path` = zip, folder or file); csv: the file or folder at `dataset_path`;
    table: the table named by `dataset_path`.
    """
    from pathlib import Path

    from refarch.datasets.interactions import (
        InteractionColumns,
        generate_interactions,
        read_interactions_csv,
        read_interactions_table,
    )
    from refarch.datasets.movielens import read_movielens

    dataset = conf.dataset
    if dataset == "generated":
        return generate_interactions(spark, generator_spec(conf.generator))
    if dataset.startswith("movielens-"):
        return read_movielens(spark, dataset, Path(conf.dataset_cache), dataset_path or None, verify_checksum)
    c = conf.csv
    columns = InteractionColumns(c.user, c.item, c.rating, c.timestamp)
    if dataset == "csv":
        if not dataset_path:
            raise ParameterError("dataset 'csv' needs parameter 'dataset_path': the file or folder to read")
        return read_interactions_csv(spark, dataset_path, columns, c.separator, c.header)
    if dataset == "table":
        if not dataset_path:
            raise ParameterError("dataset 'table' needs parameter 'dataset_path': the table to read")
        return read_interactions_table(tables.read(check_table_name(dataset_path, "dataset_path")), columns)
    raise ValueError(f"unknown dataset '{dataset}' (known: {', '.join(SOURCES)})")

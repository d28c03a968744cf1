"""Interactions (user, item, rating or weight, timestamp): a generator and a generic loader.

The generator stands in for a media site's ratings where real data cannot be fetched. It
keeps what makes MovieLens hard and learnable: a long tail of item popularity, users whose
tastes cover a few genres (so collaborative filtering has signal beyond popularity), a long
tail of user activity with a floor (MovieLens keeps users with >= 20 ratings), explicit 1-5
ratings driven by user and item biases plus taste, and timestamps that grow per user.
Blocks of users are generated independently from (seed, block), so the same seed gives the
same data at any parallelism, and Spark spreads blocks over the cluster to reach 20M rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

CANONICAL = ("user_id", "item_id", "rating", "timestamp")
SCHEMA = "user_id int, item_id int, rating double, timestamp long"


@dataclass(frozen=True)
class InteractionSpec:
    """Shape of the generated data; defaults are MovieLens-100k-like (943 users, 1682 items)."""

    n_users: int = 943
    n_items: int = 1682
    mean_per_user: float = 106.0
    min_per_user: int = 20
    n_tastes: int = 18
    taste_focus: float = 0.25  # Dirichlet concentration: small = users love few genres
    taste_strength: float = 3.0  # how much taste, against popularity, drives what a user rates
    popularity_exponent: float = 1.0  # Zipf exponent of item popularity
    rating_noise: float = 0.9
    start: dt.date = dt.date(2015, 1, 1)
    span_days: int = 3 * 365
    seed: int = 42
    users_per_block: int = 256

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.n_items < 2:
            raise ValueError("need at least 1 user and 2 items")
        if not 1 <= self.min_per_user <= self.n_items:
            raise ValueError(f"min_per_user must be within 1..n_items ({self.n_items})")
        if self.mean_per_user < self.min_per_user:
            raise ValueError("mean_per_user must be at least min_per_user")

    @property
    def n_blocks(self) -> int:
        return -(-self.n_users // self.users_per_block)


@dataclass(frozen=True)
class _Items:
    log_popularity: np.ndarray  # (n_items,)
    genres: np.ndarray  # (n_items, n_tastes), rows sum to 1
    quality: np.ndarray  # (n_items,) rating bias


def _items(spec: InteractionSpec) -> _Items:
    """Item parameters, derived from the seed alone so every block sees the same catalogue."""
    rng = np.random.default_rng([spec.seed, 0])
    n, g = spec.n_items, spec.n_tastes
    ranks = rng.permutation(n) + 1
    log_pop = -spec.popularity_exponent * np.log(ranks)
    genre_sizes = rng.dirichlet(np.full(g, 2.0))
    primary = rng.choice(g, size=n, p=genre_sizes)
    secondary = rng.choice(g, size=n, p=genre_sizes)
    genres = np.zeros((n, g))
    genres[np.arange(n), primary] += 0.75
    genres[np.arange(n), secondary] += 0.25
    # popular items are rated a little higher, as on MovieLens
    quality = rng.normal(0.0, 0.45, n) + 0.08 * (log_pop - log_pop.mean())
    return _Items(log_pop, genres, quality)


def generate_block(spec: InteractionSpec, block: int, items: _Items | None = None) -> pd.DataFrame:
    """Interactions of the users in one block (ids are 1-based, like MovieLens)."""
    items = items or _items(spec)
    rng = np.random.default_rng([spec.seed, 1, block])
    first = block * spec.users_per_block
    users = np.arange(first, min(first + spec.users_per_block, spec.n_users))
    if users.size == 0:
        return pd.DataFrame(
            {c: pd.Series(dtype=t) for c, t in zip(CANONICAL, ("int32", "int32", "float64", "int64"), strict=True)}
        )
    b = users.size
    tastes = rng.dirichlet(np.full(spec.n_tastes, spec.taste_focus), size=b)  # (b, g)
    affinity = tastes @ items.genres.T  # (b, n_items) in [0, 1]
    # how many items each user rates: a long tail above the floor
    extra_mean = max(spec.mean_per_user - spec.min_per_user, 1e-9)
    sigma = 1.0
    counts = spec.min_per_user + rng.lognormal(np.log(extra_mean) - sigma**2 / 2, sigma, b)
    counts = np.minimum(np.round(counts).astype(int), spec.n_items // 2 if spec.n_items >= 4 else spec.n_items)
    counts = np.maximum(counts, min(spec.min_per_user, spec.n_items))
    # which items: weighted sampling without replacement by the Gumbel top-k trick
    logits = items.log_popularity[None, :] + spec.taste_strength * np.log(affinity + 0.02)
    keys = logits + rng.gumbel(size=logits.shape)
    rows = np.repeat(np.arange(b), counts)
    cols = np.concatenate([np.argpartition(-keys[i], counts[i] - 1)[: counts[i]] for i in range(b)])
    # ratings: global mean + user bias + item quality + taste, rounded to 1..5
    user_bias = rng.normal(0.0, 0.35, b)
    aff = affinity[rows, cols]
    centred = aff - affinity.mean(axis=1)[rows]
    raw = 3.55 + user_bias[rows] + items.quality[cols] + 2.0 * centred + rng.normal(0, spec.rating_noise, rows.size)
    rating = np.clip(np.rint(raw), 1, 5)
    # timestamps: each user joins at some point and rates over weeks to months
    start = int(dt.datetime.combine(spec.start, dt.time(), dt.timezone.utc).timestamp())
    span = spec.span_days * 86_400
    joined = start + rng.integers(0, max(span // 2, 1), b)
    gaps = rng.exponential(3_600 * 6, rows.size)
    ts = np.empty(rows.size, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for i in range(b):  # cumulative gaps per user, in a random order of the sampled items
        lo, hi = offsets[i], offsets[i + 1]
        ts[lo:hi] = joined[i] + np.cumsum(gaps[lo:hi]).astype(np.int64)
        perm = rng.permutation(hi - lo)
        ts[lo:hi] = ts[lo:hi][perm]
    return pd.DataFrame(
        {
            "user_id": (users[rows] + 1).astype("int32"),
            "item_id": (cols + 1).astype("int32"),
            "rating": rating.astype("float64"),
            "timestamp": np.minimum(ts, start + span),
        }
    )


def generate_interactions_pandas(spec: InteractionSpec) -> pd.DataFrame:
    """All blocks on this process: for tests and small runs."""
    items = _items(spec)
    return pd.concat([generate_block(spec, b, items) for b in range(spec.n_blocks)], ignore_index=True)


def generate_interactions(
    spark: SparkSession, spec: InteractionSpec, partitions: int | None = None, driver_rows: int = 1_000_000
) -> DataFrame:
    """Generate in Spark, one task per group of user blocks: scales to MovieLens-20M and beyond.

    Below `driver_rows` expected rows the data is made on the driver and handed over through
    Arrow, which skips starting Python workers for a few seconds of numpy.
    """
    if spec.n_users * spec.mean_per_user <= driver_rows:
        log.info("generating interactions on the driver: %s", spec)
        return spark.createDataFrame(generate_interactions_pandas(spec), SCHEMA)
    n_blocks = spec.n_blocks
    parts = max(1, min(n_blocks, partitions or spark.sparkContext.defaultParallelism * 2))
    fields = asdict(spec)

    def build(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        local = InteractionSpec(**fields)
        items = _items(local)
        for batch in batches:
            for block in batch["id"].tolist():
                yield generate_block(local, int(block), items)

    log.info("generating interactions: %s", spec)
    return spark.range(0, n_blocks, 1, parts).mapInPandas(build, SCHEMA)


# ---- a loader for any interactions file or table -----------------------------------


@dataclass(frozen=True)
class InteractionColumns:
    """Names of the source columns; rating None means every row weighs 1.0, timestamp None means 0."""

    user: str = "user_id"
    item: str = "item_id"
    rating: str | None = "rating"
    timestamp: str | None = "timestamp"


def canonical(df: DataFrame, columns: InteractionColumns) -> DataFrame:
    """Rename the source columns to user_id, item_id, rating, timestamp (values untouched)."""
    from pyspark.sql import functions as F

    missing = [c for c in (columns.user, columns.item, columns.rating, columns.timestamp) if c and c not in df.columns]
    if missing:
        raise ValueError(f"interactions: no column(s) {', '.join(missing)} (found: {', '.join(df.columns)})")
    return df.select(
        F.col(columns.user).alias("user_id"),
        F.col(columns.item).alias("item_id"),
        (F.col(columns.rating) if columns.rating else F.lit("1.0")).alias("rating"),
        (F.col(columns.timestamp) if columns.timestamp else F.lit("0")).alias("timestamp"),
    )


def read_interactions_csv(
    spark: SparkSession,
    path: str,
    columns: InteractionColumns = InteractionColumns(),
    separator: str = ",",
    header: bool = True,
) -> DataFrame:
    """A delimited file (or folder of files, .gz included) read as strings, renamed to canonical names.

    Without a header the columns are positional: user, item, [rating], [timestamp].
    """
    reader = spark.read.option("sep", separator).option("header", str(header).lower()).option("mode", "PERMISSIVE")
    df = reader.csv(path)  # all strings: types are checked by ingest, bad rows quarantined
    if not header:
        wanted = [n for n in (columns.user, columns.item, columns.rating, columns.timestamp) if n]
        if len(df.columns) < len(wanted):
            raise ValueError(f"{path}: {len(df.columns)} column(s), expected {len(wanted)} ({', '.join(wanted)})")
        df = df.toDF(*wanted, *df.columns[len(wanted) :])
    return canonical(df, columns)


def read_interactions_table(table_df: DataFrame, columns: InteractionColumns = InteractionColumns()) -> DataFrame:
    """A table already read by the caller (`tables.read(name)`), renamed to canonical names."""
    return canonical(table_df, columns)

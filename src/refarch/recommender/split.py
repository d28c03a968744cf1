"""Train/test splitters on Spark DataFrames: random, chronological and stratified.

Every split decides per row from a hash of (seed, the row's values), never from `rand()`,
so the same seed gives the same split whatever the partitioning or the cluster size.
Per-group splits keep at least one row on each side for every group with two or more rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from refarch.recommender.settings import SPLIT_METHODS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def _check_ratio(ratio: float) -> None:
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"split ratio must be strictly between 0 and 1, got {ratio}")


def _row_hash(df: DataFrame, seed: int) -> Column:
    """A stable pseudo-random number per row, from the seed and the row's own values."""
    from pyspark.sql import functions as F

    return F.xxhash64(F.lit(seed), *[F.col(c) for c in df.columns])


def random_split(df: DataFrame, ratio: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Each row goes to train with probability `ratio`, independently of its user."""
    from pyspark.sql import functions as F

    _check_ratio(ratio)
    u = F.pmod(_row_hash(df, seed), F.lit(1 << 30)) / float(1 << 30)
    tagged = df.withColumn("_u", u)
    return tagged.filter(F.col("_u") < ratio).drop("_u"), tagged.filter(F.col("_u") >= ratio).drop("_u")


def _split_within(df: DataFrame, by: str, ratio: float, order: list[Column]) -> tuple[DataFrame, DataFrame]:
    """Within each `by` group, the first round(ratio * n) rows in `order` go to train (1..n-1 of them)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ranked = df.withColumn("_pos", F.row_number().over(Window.partitionBy(by).orderBy(*order))).withColumn(
        "_n", F.count(F.lit(1)).over(Window.partitionBy(by))
    )
    n_train = F.when(
        F.col("_n") >= 2, F.least(F.greatest(F.round(F.col("_n") * ratio), F.lit(1)), F.col("_n") - 1)
    ).otherwise(F.col("_n"))
    ranked = ranked.withColumn("_train", F.col("_pos") <= n_train)
    cols = df.columns
    return ranked.filter("_train").select(*cols), ranked.filter(~F.col("_train")).select(*cols)


def stratified_split(df: DataFrame, ratio: float, seed: int, by: str) -> tuple[DataFrame, DataFrame]:
    """Per user (or per item with by='item_id'), a random `ratio` of its rows goes to train."""
    from pyspark.sql import functions as F

    _check_ratio(ratio)
    order = [_row_hash(df, seed), *[F.col(c) for c in df.columns]]
    return _split_within(df, by, ratio, order)


def chronological_split(
    df: DataFrame, ratio: float, by: str, time_col: str = "timestamp"
) -> tuple[DataFrame, DataFrame]:
    """Per user, the earliest `ratio` of rows go to train and the latest to test (ties by the other columns)."""
    from pyspark.sql import functions as F

    _check_ratio(ratio)
    order = [F.col(time_col), *[F.col(c) for c in df.columns if c != time_col]]
    return _split_within(df, by, ratio, order)


def split(df: DataFrame, method: str, ratio: float, seed: int, by: str) -> tuple[DataFrame, DataFrame]:
    """Dispatch by name (`split.method`, or the job parameter `split_method`)."""
    if method == "random":
        return random_split(df, ratio, seed)
    if method == "chronological":
        return chronological_split(df, ratio, by)
    if method == "stratified":
        return stratified_split(df, ratio, seed, by)
    raise ValueError(f"unknown split method '{method}' (known: {', '.join(SPLIT_METHODS)})")

"""The most-popular baseline: what every user would get without personalisation.

Popularity is the number of training interactions of an item, ties to the smaller item id.
Recommending it per user reuses the factor top-k with a one-dimensional "model" (user
factor 1, item factor = popularity), so seen items are removed the same way as for ALS and
the baseline scales the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from refarch.recommender.topk import top_k_from_factors

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def item_popularity(train: DataFrame) -> DataFrame:
    """(item_id, score) with score = number of training interactions."""
    from pyspark.sql import functions as F

    return train.groupBy(F.col("item_id").cast("int").alias("item_id")).agg(
        F.count(F.lit(1)).cast("double").alias("score")
    )


def popular_items(train: DataFrame, n: int) -> DataFrame:
    """The `popular_items` table: rank (1-based), item_id, score; the fallback for unknown users."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    top = item_popularity(train).orderBy(F.col("score").desc(), F.col("item_id")).limit(n)
    order = Window.orderBy(F.col("score").desc(), F.col("item_id"))
    return top.select(F.row_number().over(order).cast("int").alias("rank"), "item_id", "score")


def recommend_popular(
    train: DataFrame, k: int, users: DataFrame | None = None, seen: DataFrame | None = None
) -> DataFrame:
    """(user_id, rank, item_id, score): the k most popular items each user has not seen.

    `users` defaults to the users of `train`; `seen` defaults to `train`.
    """
    from pyspark.sql import functions as F

    users = (users if users is not None else train).select(F.col("user_id").cast("int")).distinct()
    user_factors = users.select(F.col("user_id").alias("id"), F.array(F.lit(1.0).cast("float")).alias("features"))
    item_factors = item_popularity(train).select(
        F.col("item_id").alias("id"), F.array(F.col("score").cast("float")).alias("features")
    )
    return top_k_from_factors(user_factors, item_factors, k, seen=train if seen is None else seen)

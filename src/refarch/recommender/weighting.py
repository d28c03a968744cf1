"""Interaction weighting before implicit ALS: the weight w in the confidence 1 + alpha * w.

Each (user, item) interaction brings a value v: its rating (`confidence: rating`) or 1
(`confidence: binary`). The weighting turns v into w:
- linear: w = v, the confidence of Hu, Koren and Volinsky (2008);
- log: w = log(1 + v), their log scaling: large values count less than proportionally;
- bm25: w = v (K1 + 1) / (K1 (1 - B + B len_u / avglen) + v) * idf_i, with users as documents and
  items as terms (the `bm25_weight` of the `implicit` library): len_u is the sum of the user's
  values, avglen its mean over users, idf_i = max(0, log(N / (1 + n_i))) for N users of whom
  n_i have item i. Popular items weigh less, and so do users who interact with everything.
Weights are then divided by their mean over the data, so that alpha means the same under every
weighting (an average interaction has confidence 1 + alpha) and one alpha range searches them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

Weighting = Literal["linear", "log", "bm25"]
WEIGHTINGS: tuple[str, ...] = get_args(Weighting)


def weigh(
    interactions: DataFrame,
    weighting: Weighting,
    *,
    binary: bool,
    bm25_k1: float,
    bm25_b: float,
) -> DataFrame:
    """(user_id, item_id, rating) with rating = the weight w, scaled to mean 1.

    `interactions` has user_id, item_id and (unless `binary`) rating; a pair listed twice counts
    as two interactions (ALS sums them).
    """
    from pyspark.sql import functions as F

    value: Column = F.lit(1.0) if binary else F.col("rating").cast("double")
    pairs = interactions.select(F.col("user_id").cast("int"), F.col("item_id").cast("int"), value.alias("v"))
    if weighting == "linear":
        weighted = pairs.withColumn("w", F.col("v"))
    elif weighting == "log":
        weighted = pairs.withColumn("w", F.log1p("v"))
    elif weighting == "bm25":
        weighted = _bm25(pairs, bm25_k1, bm25_b)
    else:
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    mean = weighted.agg(F.avg("w")).first()[0]
    if mean is None:
        raise ValueError("no interactions to weigh")
    scale = 1.0 / mean if mean > 0 else 1.0
    return weighted.select("user_id", "item_id", (F.col("w") * F.lit(scale)).cast("float").alias("rating"))


def _bm25(pairs: DataFrame, k1: float, b: float) -> DataFrame:
    from pyspark.sql import functions as F

    lengths = pairs.groupBy("user_id").agg(F.sum("v").alias("len"))
    stats = lengths.agg(F.count(F.lit(1)).alias("n_users"), F.avg("len").alias("avg_len")).first()
    n_users, avg_len = stats["n_users"], stats["avg_len"]
    docs = pairs.groupBy("item_id").agg(F.countDistinct("user_id").alias("n_i"))
    idf = F.greatest(F.log(F.lit(float(n_users)) / (F.col("n_i") + 1)), F.lit(0.0))
    norm = F.lit(1.0 - b) + F.lit(b) * F.col("len") / F.lit(float(avg_len))
    return (
        pairs.join(lengths, "user_id")
        .join(docs, "item_id")
        .withColumn("w", F.col("v") * (k1 + 1.0) / (F.lit(k1) * norm + F.col("v")) * idf)
        .select("user_id", "item_id", "v", "w")
    )

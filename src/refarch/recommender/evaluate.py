"""Rating and ranking metrics on Spark DataFrames, computed in one pass for several k.

Conventions (those of Microsoft Recommenders, so figures compare):
- every test item of a user is relevant; users are those of the test set, and a user with
  no recommendation scores 0;
- precision@k divides by k; recall@k by the number of relevant items;
- nDCG@k uses gains 1/log2(rank+1) and the ideal list of min(k, relevant) hits;
- MAP@k sums precision at each hit within k and divides by min(k, relevant);
- hit rate@k is the share of users with at least one relevant item in their top k.
Ranked lists come from `rank_scores` (ties to the smaller item id) or from topk/baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pyspark.sql import DataFrame

RANKING_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")
RATING_METRICS = ("rmse", "mae", "r2", "explained_variance")


class EvaluateConf(BaseModel):
    """conf/recommender.yml `evaluate`."""

    model_config = ConfigDict(extra="forbid")

    ks: list[int] = Field(default_factory=lambda: [1, 5, 10, 20], min_length=1)
    rating_model: bool = True


def rating_metrics(predictions: DataFrame, label: str = "rating", prediction: str = "prediction") -> dict[str, float]:
    """RMSE, MAE, R² and explained variance over rows with a finite prediction (`n` says how many)."""
    from pyspark.sql import functions as F

    rows = predictions.select(F.col(label).cast("double").alias("y"), F.col(prediction).cast("double").alias("p"))
    rows = rows.filter(F.col("p").isNotNull() & ~F.isnan("p")).withColumn("e", F.col("y") - F.col("p"))
    agg = rows.agg(
        F.count(F.lit(1)).alias("n"),
        F.avg(F.col("e") * F.col("e")).alias("mse"),
        F.avg(F.abs("e")).alias("mae"),
        F.var_pop("y").alias("var_y"),
        F.var_pop("e").alias("var_e"),
    ).first()
    if agg is None or not agg["n"]:
        raise ValueError("no rows with a prediction to evaluate")
    var_y = agg["var_y"] or 0.0
    return {
        "n": float(agg["n"]),
        "rmse": math.sqrt(agg["mse"]),
        "mae": agg["mae"],
        "r2": 1.0 - agg["mse"] / var_y if var_y > 0 else float("nan"),
        "explained_variance": 1.0 - agg["var_e"] / var_y if var_y > 0 else float("nan"),
    }


def rank_scores(scores: DataFrame, k: int, score: str = "score") -> DataFrame:
    """(user_id, item_id, score) -> top k per user with rank; ties go to the smaller item id."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy("user_id").orderBy(F.col(score).desc(), F.col("item_id"))
    return (
        scores.withColumn("rank", F.row_number().over(order))
        .filter(F.col("rank") <= k)
        .select("user_id", "rank", "item_id", F.col(score).alias("score"))
    )


def _idcg_column(n_relevant_capped: str, k: int):
    """IDCG for min(k, relevant) hits, looked up in a literal array (index = number of hits)."""
    from pyspark.sql import functions as F

    table = [0.0]
    for r in range(1, k + 1):
        table.append(table[-1] + 1.0 / math.log2(r + 1))
    return F.element_at(F.array(*[F.lit(v) for v in table]), (F.col(n_relevant_capped) + 1).cast("int"))


def ranking_metrics(ranked: DataFrame, truth: DataFrame, ks: Sequence[int] = (10,)) -> pd.DataFrame:
    """Precision, recall, nDCG, MAP and hit rate at each k: a frame indexed by k.

    `ranked`: (user_id, rank, item_id) with rank 1 = best, seen items already removed;
    `truth`: (user_id, item_id) relevant pairs, e.g. the test split.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"k values must be positive, got {ks}")
    relevant = truth.select("user_id", "item_id").distinct()
    n_rel = relevant.groupBy("user_id").agg(F.count(F.lit(1)).alias("n_rel"))
    hits = (
        ranked.filter(F.col("rank") <= ks[-1])
        .select("user_id", "item_id", "rank")
        .join(relevant, ["user_id", "item_id"])
        .withColumn("hit_no", F.row_number().over(Window.partitionBy("user_id").orderBy("rank", "item_id")))
    )
    per_user_aggs = []
    for k in ks:
        within = F.col("rank") <= k
        per_user_aggs += [
            F.sum(F.when(within, 1).otherwise(0)).alias(f"h{k}"),
            F.sum(F.when(within, 1.0 / F.log2(F.col("rank") + 1)).otherwise(0.0)).alias(f"dcg{k}"),
            F.sum(F.when(within, F.col("hit_no") / F.col("rank")).otherwise(0.0)).alias(f"ap{k}"),
        ]
    per_user = n_rel.join(hits.groupBy("user_id").agg(*per_user_aggs), "user_id", "left").fillna(0)
    totals = []
    for k in ks:
        capped = f"cap{k}"
        per_user = per_user.withColumn(capped, F.least(F.col("n_rel"), F.lit(k)))
        totals += [
            F.avg(F.col(f"h{k}") / k).alias(f"precision@{k}"),
            F.avg(F.col(f"h{k}") / F.col("n_rel")).alias(f"recall@{k}"),
            F.avg(F.col(f"dcg{k}") / _idcg_column(capped, k)).alias(f"ndcg@{k}"),
            F.avg(F.col(f"ap{k}") / F.col(capped)).alias(f"map@{k}"),
            F.avg(F.when(F.col(f"h{k}") > 0, 1.0).otherwise(0.0)).alias(f"hit_rate@{k}"),
        ]
    row = per_user.agg(*totals, F.count(F.lit(1)).alias("users")).first()
    if row is None or not row["users"]:
        raise ValueError("no users with relevant items to evaluate")
    frame = pd.DataFrame([{"k": k, **{m: float(row[f"{m}@{k}"]) for m in RANKING_METRICS}} for k in ks]).set_index("k")
    frame.attrs["users"] = int(row["users"])
    return frame


def compare_by_k(ranked_by_model: Mapping[str, DataFrame], truth: DataFrame, ks: Sequence[int]) -> pd.DataFrame:
    """Long table (model, k, metric, value) for several models on the same truth."""
    parts = []
    for name, ranked in ranked_by_model.items():
        frame = ranking_metrics(ranked, truth, ks).reset_index().melt(id_vars="k", var_name="metric")
        frame.insert(0, "model", name)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def lift(long: pd.DataFrame, model: str, baseline: str, k: int) -> pd.DataFrame:
    """Metric values at k for `model` and `baseline` side by side, with the ratio."""
    at_k = long[long["k"] == k].pivot(index="metric", columns="model", values="value")
    at_k = at_k[[model, baseline]]
    at_k["lift"] = at_k[model] / at_k[baseline].where(at_k[baseline] != 0)
    return at_k


def plot_metrics_by_k(long: pd.DataFrame) -> Figure:
    """One panel per ranking metric, one line per model, k on the x axis."""
    import matplotlib.pyplot as plt

    metrics = [m for m in RANKING_METRICS if m in set(long["metric"])]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for model, part in long[long["metric"] == metric].groupby("model"):
            part = part.sort_values("k")
            ax.plot(part["k"], part["value"], marker="o", label=model)
        ax.set_title(f"{metric}@k")
        ax.set_xlabel("k")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def metrics_table(long: pd.DataFrame, rating: Mapping[str, float] | None, rating_model: str) -> pd.DataFrame:
    """Ranking metrics (model, k, metric, value) plus the rating metrics (k missing) in one table."""
    rows = long[["model", "k", "metric", "value"]].astype({"k": "Int64", "value": "float64"})
    if rating:
        extra = pd.DataFrame(
            [{"model": rating_model, "k": pd.NA, "metric": m, "value": float(rating[m])} for m in RATING_METRICS]
        ).astype({"k": "Int64"})
        rows = pd.concat([rows, extra], ignore_index=True)
    return rows


def log_to_mlflow(run_id: str | None, table: pd.DataFrame, figure: Figure | None = None) -> None:
    """Test metrics as `test_<model>_<metric>_at_<k>` on the training run (or a new run)."""
    import re

    import mlflow

    def key(row: pd.Series) -> str:
        model = re.sub(r"[^0-9a-zA-Z]+", "_", str(row["model"])).strip("_").lower()
        suffix = "" if pd.isna(row["k"]) else f"_at_{int(row['k'])}"
        return f"test_{model}_{row['metric']}{suffix}"

    values = {key(r): float(r["value"]) for _, r in table.iterrows() if pd.notna(r["value"])}
    with mlflow.start_run(run_id=run_id) if run_id else mlflow.start_run(run_name="als-evaluate"):
        mlflow.log_metrics(values)
        if figure is not None:
            mlflow.log_figure(figure, "metrics_by_k.png")

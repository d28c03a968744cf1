"""Rating and ranking metrics on Spark DataFrames, computed in one pass for several k.

Definitions (those of Microsoft Recommenders' `python_evaluation`):
- every test item of a user is relevant; ranked lists have seen items removed already;
- precision@k divides by k; recall@k by the number of relevant items;
- nDCG@k uses gains 1/log2(rank+1) and the ideal list of min(k, relevant) hits;
- MAP@k sums precision at each hit within k and divides by min(k, relevant);
- hit rate@k is the share of users with at least one relevant item in their top k.

Which users a figure averages over is a choice, `users`:
- "test": every user of the test set (each user with a relevant item); a user the model gives
  no recommendation (e.g. no factors: cold start) counts as 0. This is the figure for the
  service, which must answer every user.
- "common": the users present in both the test set and the recommendations; users without a
  recommendation are left out. This is Recommenders' `merge_ranking_true_pred`, behind its
  precision_at_k, recall_at_k and map_at_k, and the join of its SparkRankingEvaluation, so
  "common" figures compare with theirs. (Its pandas `ndcg_at_k` outer-joins the whole test set
  and so averages over the test users, as "test" does.)
The two agree when every test user gets a list; "common" is never below "test".
Ranked lists come from topk (ties to the smaller item id) or baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal, get_args

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pyspark.sql import DataFrame

RANKING_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")
RATING_METRICS = ("rmse", "mae", "r2", "explained_variance")
Users = Literal["test", "common"]
USERS: tuple[Users, ...] = get_args(Users)


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


def ranking_metrics(ranked: DataFrame, truth: DataFrame, ks: Sequence[int], users: Users = "test") -> pd.DataFrame:
    """Precision, recall, nDCG, MAP and hit rate at each k, averaged over `users`: a frame indexed by k.

    `ranked`: (user_id, rank, item_id) with rank 1 = best, seen items already removed;
    `truth`: (user_id, item_id) relevant pairs, e.g. the test split. `frame.attrs["users"]`
    is the number of users averaged over.
    """
    return ranking_metrics_by_users(ranked, truth, ks, (users,))[users]


def ranking_metrics_by_users(
    ranked: DataFrame, truth: DataFrame, ks: Sequence[int], conventions: Sequence[Users] = USERS
) -> dict[str, pd.DataFrame]:
    """`ranking_metrics` for each user convention, all from one Spark aggregation.

    A convention with no user to average over (e.g. "common" when nobody got a list) gives NaN.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"k values must be positive, got {ks}")
    unknown = [c for c in conventions if c not in USERS]
    if unknown or not conventions:
        raise ValueError(f"users must be one of {', '.join(USERS)}, got {', '.join(map(str, conventions)) or 'none'}")
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
    listed = ranked.select("user_id").distinct().withColumn("_listed", F.lit(True))
    per_user = (
        n_rel.join(hits.groupBy("user_id").agg(*per_user_aggs), "user_id", "left")
        .fillna(0)
        .join(listed, "user_id", "left")
        .fillna(False, subset=["_listed"])
    )
    for k in ks:
        per_user = per_user.withColumn(f"cap{k}", F.least(F.col("n_rel"), F.lit(k)))
    per_metric = {}
    for k in ks:
        per_metric |= {
            f"precision@{k}": F.col(f"h{k}") / k,
            f"recall@{k}": F.col(f"h{k}") / F.col("n_rel"),
            f"ndcg@{k}": F.col(f"dcg{k}") / _idcg_column(f"cap{k}", k),
            f"map@{k}": F.col(f"ap{k}") / F.col(f"cap{k}"),
            f"hit_rate@{k}": F.when(F.col(f"h{k}") > 0, 1.0).otherwise(0.0),
        }
    scope = {"test": F.lit(True), "common": F.col("_listed")}
    totals = []
    for c in conventions:
        inside = scope[c]
        totals += [F.avg(F.when(inside, value)).alias(f"{c}:{name}") for name, value in per_metric.items()]
        totals.append(F.sum(F.when(inside, 1).otherwise(0)).alias(f"{c}:users"))
    row = per_user.agg(*totals, F.count(F.lit(1)).alias("truth_users")).first()
    if row is None or not row["truth_users"]:
        raise ValueError("no users with relevant items to evaluate")
    out = {}
    for c in conventions:
        n = int(row[f"{c}:users"] or 0)
        values = [
            {"k": k, **{m: float("nan") if n == 0 else float(row[f"{c}:{m}@{k}"]) for m in RANKING_METRICS}} for k in ks
        ]
        frame = pd.DataFrame(values).set_index("k")
        frame.attrs["users"] = n
        out[c] = frame
    return out


def compare_by_k(
    ranked_by_model: Mapping[str, DataFrame],
    truth: DataFrame,
    ks: Sequence[int],
    conventions: Sequence[Users] = USERS,
) -> pd.DataFrame:
    """Long table (model, users, k, metric, value) for several models on the same truth.

    `attrs["users"]` maps (model, convention) to the number of users averaged over.
    """
    parts, counts = [], {}
    for name, ranked in ranked_by_model.items():
        for convention, frame in ranking_metrics_by_users(ranked, truth, ks, conventions).items():
            counts[(name, convention)] = frame.attrs["users"]
            long = frame.reset_index().melt(id_vars="k", var_name="metric")
            long.insert(0, "users", convention)
            long.insert(0, "model", name)
            parts.append(long)
    table = pd.concat(parts, ignore_index=True)
    table.attrs["users"] = counts
    return table


def at_k(long: pd.DataFrame, k: int) -> pd.DataFrame:
    """One row per (model, users convention) at k: the metrics and how many users they average over."""
    rows = long[long["k"] == k].pivot_table(index=["model", "users"], columns="metric", values="value", sort=False)
    rows = rows[[m for m in RANKING_METRICS if m in rows.columns]]
    counts = long.attrs.get("users", {})
    rows.insert(0, "averaged over", [counts.get(key, pd.NA) for key in rows.index])
    rows.columns.name = f"@{k}"
    return rows


def lift(long: pd.DataFrame, model: str, baseline: str, k: int) -> pd.DataFrame:
    """Metric values at k for `model` and `baseline` side by side, with the ratio, per users convention."""
    at = long[long["k"] == k].pivot_table(index=["users", "metric"], columns="model", values="value", sort=False)
    at = at[[model, baseline]]
    at["lift"] = at[model] / at[baseline].where(at[baseline] != 0)
    return at


def plot_metrics_by_k(long: pd.DataFrame) -> Figure:
    """One panel per ranking metric, one line per model and users convention, k on the x axis."""
    import matplotlib.pyplot as plt

    metrics = [m for m in RANKING_METRICS if m in set(long["metric"])]
    styles = {"test": "-", "common": "--"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for (model, users), part in long[long["metric"] == metric].groupby(["model", "users"], sort=False):
            part = part.sort_values("k")
            ax.plot(part["k"], part["value"], styles.get(users, ":"), marker="o", label=f"{model} ({users} users)")
        ax.set_title(f"{metric}@k")
        ax.set_xlabel("k")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def metrics_table(long: pd.DataFrame, rating: Mapping[str, float] | None, rating_model: str) -> pd.DataFrame:
    """Ranking metrics (model, users, k, metric, value) plus the rating metrics (users and k missing)."""
    rows = long[["model", "users", "k", "metric", "value"]].astype({"k": "Int64", "value": "float64"})
    if rating:
        extra = pd.DataFrame(
            [
                {"model": rating_model, "users": None, "k": pd.NA, "metric": m, "value": float(rating[m])}
                for m in RATING_METRICS
            ]
        ).astype({"k": "Int64"})
        rows = pd.concat([rows, extra], ignore_index=True)
    return rows


def mlflow_key(model: str, metric: str, k: object = None, users: object = None) -> str:
    """`test_<model>_<metric>[_at_<k>][_common_users]`: the "test" convention keeps the plain name."""
    import re

    name = re.sub(r"[^0-9a-zA-Z]+", "_", str(model)).strip("_").lower()
    suffix = "" if k is None or pd.isna(k) else f"_at_{int(k)}"
    if users is not None and not pd.isna(users) and users != "test":
        suffix += f"_{users}_users"
    return f"test_{name}_{metric}{suffix}"


def log_to_mlflow(run_id: str | None, table: pd.DataFrame, figure: Figure | None = None) -> None:
    """Test metrics of both users conventions on the training run (or a new run); see `mlflow_key`."""
    import mlflow

    values = {
        mlflow_key(r["model"], r["metric"], r["k"], r.get("users")): float(r["value"])
        for _, r in table.iterrows()
        if pd.notna(r["value"])
    }
    with mlflow.start_run(run_id=run_id) if run_id else mlflow.start_run(run_name="als-evaluate"):
        mlflow.log_metrics(values)
        if figure is not None:
            mlflow.log_figure(figure, "metrics_by_k.png")


def log_by_weighting(run_id: str | None, by_weighting: pd.DataFrame, k: int) -> None:
    """`test_als_<weighting>_<metric>_at_<k>` for each weighting compared (see steps.evaluate)."""
    import mlflow

    values = {
        mlflow_key(f"als {weighting}", column.split("@")[0], k): float(value)
        for weighting, row in by_weighting.iterrows()
        for column, value in row.items()
        if column.endswith(f"@{k}") and not column.startswith("validation") and pd.notna(value)
    }
    with mlflow.start_run(run_id=run_id) if run_id else mlflow.start_run(run_name="als-evaluate"):
        mlflow.log_metrics(values)

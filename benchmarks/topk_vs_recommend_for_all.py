"""Top-k for all users: refarch's blocked numpy top-k against Spark's `ALSModel.recommendForAllUsers`.

Same ALS model for both (50,000 users x 20,000 items, rank 32 by default), k = 10. Ours also
removes each user's seen items (20 per user on average). Both outputs are fully computed
(written to Spark's `noop` sink) and timed after a warm-up on a few users.

    .venv/bin/python benchmarks/topk_vs_recommend_for_all.py [--users 50000 --items 20000 --rank 32 --k 10]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np
import pandas as pd

log = logging.getLogger("benchmark")


def als_model(spark, user_factors, item_factors, rank: int):
    """An ALSModel over given factor DataFrames (the JVM constructor; same object ALS.fit returns)."""
    from pyspark.ml.recommendation import ALSModel

    java = spark._jvm.org.apache.spark.ml.recommendation.ALSModel(
        "als_benchmark", rank, user_factors._jdf, item_factors._jdf
    )
    java.setUserCol("user_id").setItemCol("item_id").setPredictionCol("prediction").setColdStartStrategy("drop")
    model = ALSModel(java)
    model._transfer_params_from_java()
    return model


def factors(spark, n: int, rank: int, seed: int):
    rng = np.random.default_rng(seed)
    mat = (rng.standard_normal((n, rank)) / np.sqrt(rank)).astype(np.float32)
    pdf = pd.DataFrame({"id": np.arange(n, dtype=np.int32), "features": list(mat)})
    return spark.createDataFrame(pdf, "id int, features array<float>")


def seen_items(spark, n_users: int, n_items: int, per_user: int, seed: int):
    """About `per_user` items per user, drawn with a long-tail popularity."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(per_user, n_users) + 1
    users = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    pop = 1.0 / np.arange(1, n_items + 1)
    items = rng.choice(n_items, size=users.size, p=pop / pop.sum()).astype(np.int32)
    pdf = pd.DataFrame({"user_id": users, "item_id": items}).drop_duplicates()
    return spark.createDataFrame(pdf, "user_id int, item_id int")


def timed(label: str, action) -> float:
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    log.info("%s: %.1f s", label, seconds)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seen-per-user", type=int, default=20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)

    from pyspark import StorageLevel

    from refarch.recommender.topk import top_k_for_model
    from refarch.runtime import get_spark

    spark = get_spark()
    try:
        users = factors(spark, args.users, args.rank, 1).persist(StorageLevel.MEMORY_ONLY)
        items = factors(spark, args.items, args.rank, 2).persist(StorageLevel.MEMORY_ONLY)
        seen = seen_items(spark, args.users, args.items, args.seen_per_user, 3).persist(StorageLevel.MEMORY_ONLY)
        n_seen = seen.count()
        users.count(), items.count()
        model = als_model(spark, users, items, args.rank)

        # warm-up and a correctness check on a few users: without seen items both give the same lists
        few = spark.createDataFrame([(u,) for u in range(0, args.users, max(1, args.users // 20))], "user_id int")
        theirs = {
            r.user_id: [x.item_id for x in r.recommendations]
            for r in model.recommendForUserSubset(few, args.k).collect()
        }
        ours: dict[int, list[int]] = {}
        for r in top_k_for_model(model, args.k, users=few).orderBy("user_id", "rank").collect():
            ours.setdefault(r.user_id, []).append(r.item_id)
        agree = sum(set(ours[u]) == set(theirs[u]) for u in theirs)
        log.info("same top-%d sets on %d of %d sampled users (seen items kept)", args.k, agree, len(theirs))

        spark_seconds = timed(
            "Spark recommendForAllUsers",
            lambda: model.recommendForAllUsers(args.k).write.format("noop").mode("overwrite").save(),
        )
        ours_seconds = timed(
            "refarch top_k_for_model (seen removed)",
            lambda: top_k_for_model(model, args.k, seen=seen).write.format("noop").mode("overwrite").save(),
        )
    finally:
        spark.stop()
    sys.stdout.write(
        f"top-{args.k} for {args.users:,} users x {args.items:,} items, rank {args.rank}, "
        f"{n_seen:,} seen pairs removed by ours\n"
        f"  Spark ALSModel.recommendForAllUsers: {spark_seconds:8.1f} s\n"
        f"  refarch top_k_for_model:             {ours_seconds:8.1f} s\n"
        f"  speed-up:                            {spark_seconds / ours_seconds:8.1f} x\n"
        f"  sampled users with identical lists (seen kept): {agree}/{len(theirs)}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

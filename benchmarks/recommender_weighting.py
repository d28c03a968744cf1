"""Ranking quality of implicit ALS by interaction weighting (linear, log, bm25) on the generated data.

The data and split are those of the recommender job's defaults (conf/recommender.yml: the
MovieLens-100k-like generator, a stratified 75/25 split). For each weighting, the same search
(Optuna over `als.adaptive`, or `--search quick|full` for the grids) runs on a validation split of
the training data; its best trial is refitted on the whole training split and scored on the test
split: nDCG@10, P@10, MAP@10 over every test user, seen items removed. The winner of each
weighting is chosen on validation only. The first row is the job before weighting existed: confidence
1 + r on raw ratings (alpha 1 on ratings of mean r̄ is alpha r̄ on weights of mean 1), rank 16 or 32,
regParam 0.05, 10 iterations.

    .venv/bin/python benchmarks/recommender_weighting.py [--search adaptive --trials 16 --users 943]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import pandas as pd

log = logging.getLogger("benchmark")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--search", choices=["quick", "full", "adaptive"], default="adaptive")
    parser.add_argument("--trials", type=int, default=16, help="adaptive: trials per weighting")
    parser.add_argument("--users", type=int, default=None, help="generated users (default: conf)")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)

    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from refarch.datasets.interactions import generate_interactions
    from refarch.recommender.als import AlsParams, fit_als, use_checkpoints
    from refarch.recommender.evaluate import ranking_metrics
    from refarch.recommender.ingest import generator_spec
    from refarch.recommender.search import search
    from refarch.recommender.settings import Settings
    from refarch.recommender.split import split, stratified_split
    from refarch.recommender.topk import top_k_for_model
    from refarch.runtime import get_spark
    from refarch.runtime.config import load_config

    settings = load_config("recommender").settings(Settings)
    generator = settings.ingest.generator
    if args.users:
        generator = generator.model_copy(update={"n_users": args.users})
    spec = generator_spec(generator)
    n_users = spec.n_users
    spark = get_spark()
    use_checkpoints(spark, settings.als.checkpoint_dir)
    rows = []
    try:
        ratings = generate_interactions(spark, spec)
        s = settings.split
        train, test = split(ratings, s.method, s.ratio, s.seed, s.by)
        train, test = train.persist(StorageLevel.MEMORY_AND_DISK), test.persist(StorageLevel.MEMORY_AND_DISK)
        als = settings.als.model_copy(update={"search": args.search, "k": args.k, "blocks": 2})
        fit_part, validation = stratified_split(train, als.validation_ratio, als.seed, "user_id")
        fit_part = fit_part.persist(StorageLevel.MEMORY_AND_DISK)
        validation = validation.persist(StorageLevel.MEMORY_AND_DISK)
        mean_rating = train.agg(F.avg("rating")).first()[0]
        log.info(
            "%d ratings: %d train, %d test; mean rating %.2f", ratings.count(), train.count(), test.count(), mean_rating
        )

        def test_scores(params: AlsParams) -> dict[str, float]:
            ranked = top_k_for_model(fit_als(train, params), args.k, seen=train, users=test)
            m = ranking_metrics(ranked, test, [args.k], users="test").loc[args.k]
            return {f"nDCG@{args.k}": m["ndcg"], f"P@{args.k}": m["precision"], f"MAP@{args.k}": m["map"]}

        before = als.model_copy(
            update={
                "search": "full",
                "ranks": [16, 32],
                "reg_params": [0.05],
                "alphas": [mean_rating],
                "max_iter": 10,
                "weightings": ["linear"],
            }
        )
        cases = [("before: linear on raw ratings, old quick grid", before)]
        for weighting in ("linear", "log", "bm25"):
            adaptive = als.adaptive.model_copy(update={"trials": args.trials, "weightings": [weighting]})
            cases.append((weighting, als.model_copy(update={"weightings": [weighting], "adaptive": adaptive})))
        for name, conf in cases:
            started = time.perf_counter()
            result = search(fit_part, validation, conf)
            best, val = result.best
            rows.append(
                {
                    "weighting": name,
                    "trials": len(result.trials),
                    "rank": best.rank,
                    "regParam": best.reg_param,
                    "alpha": best.alpha,
                    "iterations": best.max_iter,
                    f"validation nDCG@{args.k}": val["ndcg"],
                    **test_scores(best),
                    "search s": time.perf_counter() - started,
                }
            )
            log.info("%s: %s", name, rows[-1])
    finally:
        spark.stop()
    table = pd.DataFrame(rows).set_index("weighting")
    sys.stdout.write(
        f"implicit ALS on generated data ({n_users} users, {spec.n_items} items), search {args.search}"
        + (f" ({args.trials} trials per weighting)" if args.search == "adaptive" else "")
        + ", chosen on validation, scored on test over every test user\n"
        + table.to_string(float_format=lambda v: f"{v:.4g}")
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

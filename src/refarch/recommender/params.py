"""The parameters of notebooks/recommender/: one declaration per notebook.

A parameter with `setting=` overrides that key of conf/recommender.yml for one run; its default
is the conf value for the target. The job (jobs/recommender.job.yml) passes "" for those, which
keeps the conf value.
"""

from __future__ import annotations

from refarch.recommender.settings import ALS_MODES, SEARCH_SIZES, SOURCES, SPLIT_METHODS, Settings
from refarch.runtime import Param, TableParam, notebooks

# The tables the notebooks hand on to each other (each one's default name, written once).
RATINGS_TABLE = "ratings"
QUARANTINE_TABLE = "ratings_quarantine"
TRAIN_TABLE = "ratings_train"
TEST_TABLE = "ratings_test"
METRICS_TABLE = "recommender_metrics"
RECOMMENDATIONS_TABLE = "recommendations"
POPULAR_TABLE = "popular_items"

notebook = notebooks("recommender", Settings)


def _als_model_uri() -> Param:
    return Param(
        "als_model_uri",
        "",
        help="the ALS model (models:/name/version); empty: the train task's model, else the latest registered version",
    )


def _als_model_name() -> Param:
    return Param("model_name", setting="model_name", help="the registered name of the ALS model")


INGEST = notebook(
    "01_ingest",
    [
        Param(
            "dataset",
            setting="ingest.dataset",
            choices=SOURCES,
            help="where the interactions come from: generated; movielens-100k, -1m, -10m or -20m (downloaded, "
            "or your copy at dataset_path); csv (your file at dataset_path, columns in conf ingest.csv); "
            "table (your table named by dataset_path)",
        ),
        Param(
            "dataset_path",
            "",
            help="your data: a MovieLens zip, its folder or ratings file; a CSV file or folder; or a table name",
        ),
        Param(
            "n_users",
            setting="ingest.generator.n_users",
            min=1,
            max=10_000_000,
            help="generated data: number of users (items scale with them)",
        ),
        Param("verify_checksum", True, help="check a MovieLens zip against its published SHA-256"),
        TableParam("ratings_table", RATINGS_TABLE, help="the typed interactions written"),
        TableParam("quarantine_table", QUARANTINE_TABLE, help="malformed rows, with the reason, written"),
    ],
)

SPLIT = notebook(
    "02_split",
    [
        Param("split_method", setting="split.method", choices=SPLIT_METHODS, help="how to split ratings"),
        Param("split_ratio", setting="split.ratio", help="share of each user's ratings in train (0 < ratio < 1)"),
        TableParam("ratings_table", RATINGS_TABLE, help="the interactions to split"),
        TableParam("train_table", TRAIN_TABLE, help="the training split written"),
        TableParam("test_table", TEST_TABLE, help="the test split written"),
    ],
)

TRAIN = notebook(
    "03_train",
    [
        Param("als_mode", setting="als.mode", choices=ALS_MODES, help="implicit (confidence) or explicit ALS"),
        Param(
            "search",
            setting="als.search",
            choices=SEARCH_SIZES,
            help="the ALS search: quick or full (the grids of conf als), or adaptive (Optuna over als.adaptive)",
        ),
        TableParam("train_table", TRAIN_TABLE, help="the interactions to train on"),
        _als_model_name(),
    ],
)

EVALUATE = notebook(
    "04_evaluate",
    [
        _als_model_uri(),
        TableParam("train_table", TRAIN_TABLE, help="training interactions: popularity and the items left out"),
        TableParam("test_table", TEST_TABLE, help="the relevant items"),
        TableParam("metrics_table", METRICS_TABLE, help="the metrics written"),
        _als_model_name(),
    ],
)

TOPK = notebook(
    "05_topk",
    [
        Param("k", setting="topk.k", help="items per user in the recommendations table"),
        _als_model_uri(),
        TableParam("train_table", TRAIN_TABLE, help="popularity for the fallback"),
        TableParam("seen_table", RATINGS_TABLE, help="interactions whose items are never recommended"),
        TableParam(
            "users_table",
            optional=True,
            help="a table with a user_id column: the users to cover (empty: those of seen_table)",
        ),
        TableParam("recommendations_table", RECOMMENDATIONS_TABLE, help="the top-k lists written"),
        TableParam("popular_table", POPULAR_TABLE, help="the popular fallback written"),
        _als_model_name(),
    ],
)

PUBLISH = notebook(
    "06_publish",
    [
        TableParam("recommendations_table", RECOMMENDATIONS_TABLE, help="top-k lists to serve"),
        TableParam("popular_table", POPULAR_TABLE, help="fallback for unknown users"),
        TableParam("seen_table", RATINGS_TABLE, help="interactions whose items deep lists leave out (as topk)"),
        _als_model_uri(),
        Param("model_name", setting="publish.model_name", help="the registered name of the served pyfunc"),
        Param("alias", setting="publish.alias", help="the alias moved to the new version"),
    ],
)

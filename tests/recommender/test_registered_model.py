"""The registered `recommender` pyfunc loads and answers in a Python where refarch is not installed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_the_registered_recommender_predicts_without_refarch(spark, config, tmp_path, python_without_refarch):
    """Published to the local target's store (the SQLite file under the test's home), registered as a
    champion, then loaded from the registry by a Python that cannot import refarch: the model's own
    copy of the code opens that store and answers from it, and from its factors for a deep k."""
    import mlflow

    from refarch.recommender.model import Factors
    from refarch.recommender.publish import publish_lists, register_model
    from refarch.recommender.store import open_store
    from refarch.runtime.tracking import configure_mlflow

    configure_mlflow(config, "test-recommender-no-refarch")
    recs = spark.createDataFrame(
        [(1, 1, 13, 0.9), (1, 2, 14, 0.5), (2, 1, 11, 0.8)], "user_id int, rank int, item_id int, score double"
    )
    popular = spark.createDataFrame([(1, 10, 3.0), (2, 11, 2.0)], "rank int, item_id int, score double")
    store = open_store(config.target.serving_store)
    assert str(config.target.serving_store.path).startswith(str(config.home))
    version = publish_lists(store, recs, popular)
    factors = Factors.build(
        user_ids=np.array([1, 2]),
        user_factors=np.array([[1.0, 0.0], [0.0, 1.0]]),
        item_ids=np.array([10, 11, 12, 13, 14]),
        item_factors=np.array([[5.0, 0.0], [4.0, 1.0], [3.0, 0.0], [2.0, 0.0], [1.0, 0.0]]),
        seen_users=np.array([1]),
        seen_items=np.array([10]),
    )
    published = register_model(config, factors, version, name="recommender_no_refarch", alias="champion")
    assert published.model_uri == "models:/recommender_no_refarch@champion"

    script = textwrap.dedent(
        f"""
        import json, mlflow
        model = mlflow.pyfunc.load_model({published.model_uri!r})
        answers = model.predict([{{"user_id": 1, "k": 2}}, {{"user_id": 1, "k": 4}}, {{"user_id": 7, "k": 1}}])
        import refarch
        print(json.dumps({{
            "refarch": refarch.__file__,
            "answers": [[a.source, a.store_version, [i.item_id for i in a.items]] for a in answers],
        }}))
        """
    )
    env = python_without_refarch.registry_env(
        REFARCH_HOME=str(config.home)
    )  # the model records its store as {home}/serving.db
    out = json.loads(python_without_refarch.last_line(script, cwd=tmp_path, env=env))
    assert "/code/refarch/" in out["refarch"]  # the model's copy, not this checkout
    assert out["answers"] == [
        ["precomputed", version, [13, 14]],  # the list in the store under the test's home
        ["als", version, [11, 12, 13, 14]],  # deeper than stored: from the factors, seen item 10 left out
        ["popular", version, [10]],  # unknown user: the store's popular list
    ]
    pins = mlflow.pyfunc.get_model_dependencies(published.model_uri)
    text = Path(pins).read_text().split()
    assert f"numpy=={np.__version__}" in text and any(p.startswith("redis==") for p in text)

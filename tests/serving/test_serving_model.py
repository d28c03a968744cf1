"""The `recommender` pyfunc: precomputed lists, popular fallback, deep k from factors, typed input."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def model(tiny_recommender):
    import mlflow

    return mlflow.pyfunc.load_model(tiny_recommender["uri"])


def test_known_user_gets_the_precomputed_list(model, tiny_recommender):
    (got,) = model.predict([{"user_id": 1, "k": 2}])
    assert (got.source, got.fallback, got.store_version) == ("precomputed", False, tiny_recommender["version"])
    assert [(i.item_id, i.score) for i in got.items] == [(11, 0.9), (10, 0.8)]


def test_unknown_user_gets_popular_marked_as_fallback(model):
    (got,) = model.predict([{"user_id": 99, "k": 2}])
    assert (got.source, got.fallback) == ("popular", True)
    assert [i.item_id for i in got.items] == [13, 10]


def test_deeper_k_is_computed_from_factors_without_seen_items(model):
    (got,) = model.predict([{"user_id": 1, "k": 4}])
    assert got.source == "als"
    assert [i.item_id for i in got.items] == [10, 11, 13, 14]  # 12 was seen
    assert [i.score for i in got.items] == [5.0, 4.0, 2.0, 1.0]
    (more,) = model.predict([{"user_id": 1, "k": 10}])
    assert len(more.items) == 4  # only four unseen items exist


def test_deep_popular_list_is_extended_by_most_rated(model):
    (got,) = model.predict([{"user_id": 99, "k": 4}])
    assert [i.item_id for i in got.items][:3] == [13, 10, 11]
    assert got.items[3].item_id == 12  # the most-seen item in training
    assert got.items[3].score == 0.0


def test_default_k_and_batch_order(model):
    got = model.predict([{"user_id": 2}, {"user_id": 1, "k": 1}])
    assert [(g.user_id, g.k, len(g.items)) for g in got] == [(2, 10, 4), (1, 1, 1)]
    assert got[0].source == "als"  # k=10 deeper than the stored 2; only 4 unseen items exist
    assert [i.item_id for i in got[0].items] == [14, 13, 11, 10]


@pytest.mark.parametrize(
    "bad", [{"user_id": 1, "k": 0}, {"user_id": 1, "k": 101}, {"user_id": -1}, {"user_id": 1, "extra": 1}, {"k": 3}]
)
def test_bad_input_is_rejected_by_the_type_hint(model, bad):
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="type hint"):
        model.predict([bad])


def test_factors_build_ignores_seen_pairs_of_unknown_users_or_items():
    from refarch.recommender.model import Factors

    f = Factors.build(
        np.array([5, 3]),
        np.eye(2),
        np.array([7, 8]),
        np.eye(2),
        seen_users=np.array([3, 4, 5, 5]),
        seen_items=np.array([8, 7, 9, 7]),
    )
    assert f.user_ids.tolist() == [3, 5]
    assert f.seen_indptr.tolist() == [0, 1, 2]
    assert f.item_ids[f.seen_indices].tolist() == [8, 7]
    assert f.top_k(3, 5) == ([7], [0.0])  # user 3 = (0,1) after sorting; item 8 seen
    assert f.top_k(42, 5) is None

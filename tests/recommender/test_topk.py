"""Top-k from factors: exact against brute force, seen items removed, ties by item id, fallback."""

from __future__ import annotations

import numpy as np
import pytest

from refarch.recommender.baseline import popular_items, recommend_popular
from refarch.recommender.topk import (
    partitions_for,
    recommendations_table,
    top_k_from_factors,
    top_k_rows,
    with_fallback,
)

FACTORS = "id int, features array<float>"


def test_top_k_rows_sorted_with_ties_to_lower_index():
    scores = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 1.0, 1.0, 1.0], [0.0, -np.inf, 2.0, -np.inf]])
    idx, top = top_k_rows(scores, 2)
    assert idx.tolist() == [[1, 2], [0, 1], [2, 0]]
    assert top.tolist() == [[3.0, 3.0], [5.0, 1.0], [2.0, 0.0]]
    idx, _ = top_k_rows(scores, 10)  # k above the number of items: all of them, in order
    assert idx[1].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("k", [1, 10, 40, 100])
def test_top_k_rows_on_wide_rows_matches_a_full_sort(k):
    """Wide rows take the group-maxima bound; seen (-inf) entries, ties and the tail columns stay exact."""
    rng = np.random.default_rng(k)
    scores = rng.normal(size=(60, 5_003)).astype(np.float32)  # 5003 = 256 groups x 19 + a tail of 139
    scores[:, rng.integers(0, 5_003, 400)] = -np.inf
    scores[7] = -np.inf  # a user who has seen everything
    scores[8, 50:] = -np.inf  # fewer unseen items than k for k > 50
    scores[9, :300] = 2.5  # many ties
    scores[10, -3:] = 9.0  # the best items in the tail
    idx, top = top_k_rows(scores, k)
    expected = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)[:, :k]
    assert np.array_equal(top, np.take_along_axis(scores, expected, axis=1))
    finite = np.isfinite(top)
    assert np.array_equal(idx[finite], expected[finite])
    assert idx[10, : min(k, 3)].tolist() == [5_000, 5_001, 5_002][: min(k, 3)]


def test_partitions_are_sized_from_memory_not_from_users(monkeypatch):
    monkeypatch.setattr("refarch.recommender.topk.TASK_BYTES", 128 * 2**20)
    per_core = partitions_for(1_000, 20_000, 32, parallelism=8)
    assert per_core == 8  # small inputs: one partition per core
    # 1M users x rank 32 and 20M seen pairs: 456 MB + 480 MB in tasks of at most 128 MB
    assert partitions_for(1_000_000, 20_000_000, 32, parallelism=2) == 7
    assert partitions_for(10_000_000, 200_000_000, 32, parallelism=2) == 70  # 10x the input, 10x the tasks


def test_top_k_from_factors_by_hand(spark):
    users = spark.createDataFrame([(1, [1.0, 0.0]), (2, [0.0, 1.0])], FACTORS)
    items = spark.createDataFrame([(10, [3.0, 0.0]), (20, [2.0, 1.0]), (30, [0.0, 4.0]), (40, [1.0, 1.0])], FACTORS)
    seen = spark.createDataFrame([(1, 10)], "user_id int, item_id int")
    got = top_k_from_factors(users, items, 2, seen=seen).orderBy("user_id", "rank").collect()
    # user 1 scores 10:3 (seen), 20:2, 40:1, 30:0; user 2 scores 30:4, then 20 and 40 tie at 1 -> 20
    assert [(r.user_id, r.rank, r.item_id, r.score) for r in got] == [
        (1, 1, 20, 2.0),
        (1, 2, 40, 1.0),
        (2, 1, 30, 4.0),
        (2, 2, 20, 1.0),
    ]


@pytest.mark.parametrize(
    ("shipped", "task_bytes"),
    [(1_000_000, 16 * 2**20), (0, 16 * 2**20), (0, 2_000)],
    ids=["seen-shipped", "seen-shuffled", "seen-shuffled-small-tasks"],
)
def test_top_k_matches_brute_force_on_random_factors(spark, monkeypatch, shipped, task_bytes):
    """Same lists on either path and whatever the partitioning; blocks of 3 users, tasks of 2 kB."""
    monkeypatch.setattr("refarch.recommender.topk.SEEN_SHIPPED_PAIRS", shipped)
    monkeypatch.setattr("refarch.recommender.topk.TASK_BYTES", task_bytes)
    monkeypatch.setattr("refarch.recommender.topk.SCORES_PER_BLOCK", 75)
    rng = np.random.default_rng(0)
    n_users, n_items, rank, k = 30, 25, 4, 5
    u, v = rng.normal(size=(n_users, rank)), rng.normal(size=(n_items, rank))
    seen_pairs = [
        (int(a), int(b)) for a, b in zip(rng.integers(0, n_users, 120), rng.integers(0, n_items, 120), strict=True)
    ]
    users = spark.createDataFrame([(i, u[i].tolist()) for i in range(n_users)], FACTORS)
    items = spark.createDataFrame([(j, v[j].tolist()) for j in range(n_items)], FACTORS)
    strays = [(999, 3), (2, 999), (None, 4)]  # an unknown user, an unknown item, a null: ignored
    seen = spark.createDataFrame(seen_pairs + strays, "user_id int, item_id int")
    got = {}
    for r in top_k_from_factors(users, items, k, seen=seen).collect():
        got.setdefault(r.user_id, []).append((r.rank, r.item_id))
    scores = (u.astype(np.float32) @ v.astype(np.float32).T).astype(np.float64)
    for a, b in seen_pairs:
        scores[a, b] = -np.inf
    for user in range(n_users):
        expected = [int(j) for j in np.argsort(-scores[user], kind="stable")[:k]]
        assert [item for _, item in sorted(got[user])] == expected
        assert not set(expected) & {b for a, b in seen_pairs if a == user}
    assert set(got) == set(range(n_users))


def test_users_filter_and_k_check(spark):
    users = spark.createDataFrame([(1, [1.0]), (2, [2.0])], FACTORS)
    items = spark.createDataFrame([(5, [1.0])], FACTORS)
    only = spark.createDataFrame([(2,)], "user_id int")
    assert [r.user_id for r in top_k_from_factors(users, items, 3, users=only).collect()] == [2]
    with pytest.raises(ValueError, match="k must be at least 1"):
        top_k_from_factors(users, items, 0)


@pytest.fixture(scope="module")
def train(spark):
    # item 3 is most popular (3 users), then 1 and 2 tie (2 users each) -> 1 first, then 4
    rows = [(1, 3), (2, 3), (3, 3), (1, 1), (2, 1), (2, 2), (3, 2), (3, 4)]
    return spark.createDataFrame(
        [(u, i, 4.0, 0) for u, i in rows], "user_id int, item_id int, rating double, timestamp long"
    )


def test_popular_items_ranked_with_ties_by_item(train):
    got = [(r["rank"], r.item_id, r.score) for r in popular_items(train, 3).orderBy("rank").collect()]
    assert got == [(1, 3, 3.0), (2, 1, 2.0), (3, 2, 2.0)]


def test_recommend_popular_removes_seen(train):
    got = recommend_popular(train, 2).orderBy("user_id", "rank").collect()
    # user 1 saw 3 and 1 -> 2, 4; user 2 saw 3, 1, 2 -> 4; user 3 saw 3, 2, 4 -> 1
    assert [(r.user_id, r.item_id) for r in got] == [(1, 2), (1, 4), (2, 4), (3, 1)]


def test_unknown_users_get_the_popular_fallback(spark, train):
    ranked = spark.createDataFrame([(1, 1, 9, 0.5)], "user_id int, rank int, item_id int, score double")
    everyone = spark.createDataFrame([(1,), (99,)], "user_id int")
    out = recommendations_table(with_fallback(ranked, everyone, popular_items(train, 10), 2), "7")
    rows = sorted((r.user_id, r["rank"], r.item_id, r.model_version) for r in out.collect())
    assert rows == [(1, 1, 9, "7"), (99, 1, 3, "7"), (99, 2, 1, "7")]
    assert [f.name for f in out.schema.fields] == ["user_id", "rank", "item_id", "score", "model_version"]
    assert out.schema["score"].dataType.typeName() == "double"

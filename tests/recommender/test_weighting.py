"""Interaction weighting before ALS: linear, log and bm25 by hand on four users, scaled to mean 1."""

from __future__ import annotations

import math

import pytest

from refarch.recommender.weighting import weigh

# (user, item, rating): users 1-4, item 10 has 2 users, 11 has 2, 12 has 1
ROWS = [(1, 10, 2.0), (1, 11, 1.0), (2, 10, 4.0), (3, 11, 3.0), (4, 12, 1.0)]


@pytest.fixture(scope="module")
def interactions(spark):
    return spark.createDataFrame(ROWS, "user_id int, item_id int, rating double")


def _weights(df) -> dict[tuple[int, int], float]:
    return {(r.user_id, r.item_id): r.rating for r in df.collect()}


def _scaled(raw: dict[tuple[int, int], float]) -> dict[tuple[int, int], float]:
    mean = sum(raw.values()) / len(raw)
    return {key: value / mean for key, value in raw.items()}


def _close(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6), key


def test_linear_and_log_are_the_value_and_its_log_scaled_to_mean_one(interactions):
    linear = _weights(weigh(interactions, "linear", binary=False, bm25_k1=100, bm25_b=0.8))
    _close(linear, {(u, i): r / 2.2 for u, i, r in ROWS})  # mean rating 11 / 5
    log = _weights(weigh(interactions, "log", binary=False, bm25_k1=100, bm25_b=0.8))
    _close(log, _scaled({(u, i): math.log1p(r) for u, i, r in ROWS}))
    assert log[(2, 10)] / log[(1, 11)] == pytest.approx(math.log(5) / math.log(2), rel=1e-6)  # 2.3, not 4
    binary = _weights(weigh(interactions, "log", binary=True, bm25_k1=100, bm25_b=0.8))
    assert all(v == pytest.approx(1.0) for v in binary.values())


def test_bm25_by_hand(interactions):
    k1, b = 1.0, 0.5
    lengths = {1: 3.0, 2: 4.0, 3: 3.0, 4: 1.0}  # the sum of each user's ratings
    avg = 11 / 4
    idf = {10: math.log(4 / 3), 11: math.log(4 / 3), 12: math.log(4 / 2)}  # 4 users, n_i + 1
    raw = {(u, i): r * (k1 + 1) / (k1 * (1 - b + b * lengths[u] / avg) + r) * idf[i] for u, i, r in ROWS}
    got = _weights(weigh(interactions, "bm25", binary=False, bm25_k1=k1, bm25_b=b))
    _close(got, _scaled(raw))
    # the rare item outweighs a popular one at the same rating; a long history weighs less
    assert got[(4, 12)] > got[(1, 11)]
    assert raw[(1, 11)] == pytest.approx(1 * 2 / (1 - 0.5 + 0.5 * 3 / avg + 1) * math.log(4 / 3))


def test_an_item_everyone_has_gets_no_weight_not_a_negative_one(spark):
    rows = [(1, 5, 1.0), (2, 5, 1.0), (3, 5, 1.0), (3, 6, 1.0)]
    everyone = spark.createDataFrame(rows, "user_id int, item_id int, rating double")
    got = _weights(weigh(everyone, "bm25", binary=True, bm25_k1=100, bm25_b=0.8))
    assert got[(1, 5)] == got[(2, 5)] == got[(3, 5)] == 0.0  # idf = max(0, log(3 / 4))
    assert got[(3, 6)] == pytest.approx(4.0)  # the only weight, scaled to a mean of 1 over 4 pairs


def test_an_unknown_weighting_is_refused(interactions):
    with pytest.raises(ValueError, match="weighting must be one of linear, log, bm25"):
        weigh(interactions, "tfidf", binary=False, bm25_k1=100, bm25_b=0.8)

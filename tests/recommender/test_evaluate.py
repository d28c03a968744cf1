"""Metrics against values worked out by hand on three users."""

from __future__ import annotations

import math

import pytest

from refarch.recommender.evaluate import compare_by_k, lift, rank_scores, ranking_metrics, rating_metrics

# user 1 has relevant {1, 2, 3} and gets [1, 9, 2]: hits at ranks 1 and 3
# user 2 has relevant {4} and gets [5, 4, 6]: a hit at rank 2
# user 3 has relevant {7} and gets nothing: counts as zero everywhere
TRUTH = [(1, 1), (1, 2), (1, 3), (2, 4), (3, 7)]
RANKED = [(1, 1, 1), (1, 2, 9), (1, 3, 2), (2, 1, 5), (2, 2, 4), (2, 3, 6)]


@pytest.fixture(scope="module")
def frames(spark):
    truth = spark.createDataFrame(TRUTH, "user_id int, item_id int")
    ranked = spark.createDataFrame(RANKED, "user_id int, rank int, item_id int")
    return ranked, truth


def test_ranking_metrics_at_3_by_hand(frames):
    m = ranking_metrics(*frames, ks=[3]).loc[3]
    idcg3 = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # 2.1309
    ndcg_u1 = (1 + 1 / math.log2(4)) / idcg3  # hits at 1 and 3 -> 0.7039
    ndcg_u2 = (1 / math.log2(3)) / 1.0  # one relevant item: ideal DCG is 1 -> 0.6309
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert m["recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m["ndcg"] == pytest.approx((ndcg_u1 + ndcg_u2) / 3)
    assert m["ndcg"] == pytest.approx(0.44495, abs=1e-5)
    # MAP: user 1 (1/1 + 2/3) / min(3, 3); user 2 (1/2) / min(3, 1)
    assert m["map"] == pytest.approx(((1 + 2 / 3) / 3 + 0.5 / 1 + 0) / 3)
    assert m["hit_rate"] == pytest.approx(2 / 3)


def test_ranking_metrics_at_1_and_2_in_one_pass(frames):
    m = ranking_metrics(*frames, ks=[2, 1])
    assert list(m.index) == [1, 2]
    assert m.attrs["users"] == 3
    at1 = m.loc[1]
    assert (at1["precision"], at1["recall"], at1["ndcg"], at1["map"], at1["hit_rate"]) == pytest.approx(
        (1 / 3, 1 / 9, 1 / 3, 1 / 3, 1 / 3)
    )
    at2 = m.loc[2]  # user 1: hit at 1 only; user 2: hit at 2
    idcg2 = 1 + 1 / math.log2(3)
    assert at2["precision"] == pytest.approx((1 / 2 + 1 / 2) / 3)
    assert at2["recall"] == pytest.approx((1 / 3 + 1) / 3)
    assert at2["ndcg"] == pytest.approx((1 / idcg2 + 1 / math.log2(3)) / 3)
    assert at2["map"] == pytest.approx((1 / 2 + 0.5) / 3)  # MAP divides by min(k, relevant)


def test_perfect_ranking_scores_one(spark):
    truth = spark.createDataFrame([(1, 1), (1, 2)], "user_id int, item_id int")
    ranked = spark.createDataFrame([(1, 1, 2), (1, 2, 1)], "user_id int, rank int, item_id int")
    m = ranking_metrics(ranked, truth, ks=[2]).loc[2]
    assert m.to_dict() == pytest.approx({"precision": 1, "recall": 1, "ndcg": 1, "map": 1, "hit_rate": 1})


def test_ranking_metrics_reject_bad_k(frames):
    with pytest.raises(ValueError, match="positive"):
        ranking_metrics(*frames, ks=[0])


def test_rating_metrics_by_hand(spark):
    rows = [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0), (4.0, 5.0), (5.0, float("nan"))]
    df = spark.createDataFrame(rows, "rating double, prediction double")
    m = rating_metrics(df)
    # errors 0, 0, 0, -1 (the NaN prediction is a cold-start row and is left out)
    assert m["n"] == 4
    assert m["rmse"] == pytest.approx(0.5)
    assert m["mae"] == pytest.approx(0.25)
    assert m["r2"] == pytest.approx(1 - 0.25 / 1.25)  # var_pop(1,2,3,4) = 1.25
    assert m["explained_variance"] == pytest.approx(1 - 0.1875 / 1.25)  # var_pop(errors) = 0.1875


def test_rank_scores_breaks_ties_by_item_id(spark):
    scores = spark.createDataFrame(
        [(1, 30, 0.5), (1, 10, 0.5), (1, 20, 0.9), (1, 40, 0.1)], "user_id int, item_id int, score double"
    )
    got = [(r["rank"], r["item_id"]) for r in rank_scores(scores, 3).orderBy("rank").collect()]
    assert got == [(1, 20), (2, 10), (3, 30)]


def test_compare_and_lift(frames, spark):
    ranked, truth = frames
    worse = spark.createDataFrame([(1, 1, 9)], "user_id int, rank int, item_id int")
    long = compare_by_k({"als": ranked, "popular": worse}, truth, [3])
    table = lift(long, "als", "popular", 3)
    assert table.loc["precision", "als"] == pytest.approx(1 / 3)
    assert table.loc["precision", "popular"] == 0
    assert math.isnan(table.loc["precision", "lift"])

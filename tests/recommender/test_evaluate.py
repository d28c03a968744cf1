"""Metrics against values worked out by hand on three test users, under both users conventions."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from refarch.recommender.evaluate import (
    at_k,
    compare_by_k,
    lift,
    metrics_table,
    mlflow_key,
    ranking_metrics,
    ranking_metrics_by_users,
    rating_metrics,
)

# user 1 has relevant {1, 2, 3} and gets [1, 9, 2]: hits at ranks 1 and 3
# user 2 has relevant {4} and gets [5, 4, 6]: a hit at rank 2
# user 3 has relevant {7} and gets nothing: zero everywhere over test users, left out over common users
# user 4 gets [8] but is not in the test set: left out by both conventions
TRUTH = [(1, 1), (1, 2), (1, 3), (2, 4), (3, 7)]
RANKED = [(1, 1, 1), (1, 2, 9), (1, 3, 2), (2, 1, 5), (2, 2, 4), (2, 3, 6), (4, 1, 8)]
IDCG3 = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # 2.1309
NDCG3_U1 = (1 + 1 / math.log2(4)) / IDCG3  # hits at 1 and 3 -> 0.7039
NDCG3_U2 = (1 / math.log2(3)) / 1.0  # one relevant item: ideal DCG is 1 -> 0.6309


@pytest.fixture(scope="module")
def frames(spark):
    truth = spark.createDataFrame(TRUTH, "user_id int, item_id int")
    ranked = spark.createDataFrame(RANKED, "user_id int, rank int, item_id int")
    return ranked, truth


def test_ranking_metrics_at_3_by_hand(frames):
    m = ranking_metrics(*frames, ks=[3]).loc[3]
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert m["recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m["ndcg"] == pytest.approx((NDCG3_U1 + NDCG3_U2) / 3)
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


def test_common_users_leave_out_test_users_without_a_list(frames):
    """Microsoft Recommenders' convention: users 1 and 2 only (user 3 has no list, user 4 no test item)."""
    both = ranking_metrics_by_users(*frames, ks=[3])
    test, common = both["test"], both["common"]
    assert (test.attrs["users"], common.attrs["users"]) == (3, 2)
    m = common.loc[3]
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 3) / 2)  # 0.5, against 1/3 over the test users
    assert m["recall"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["ndcg"] == pytest.approx((NDCG3_U1 + NDCG3_U2) / 2)
    assert m["ndcg"] == pytest.approx(0.66743, abs=1e-5)
    assert m["map"] == pytest.approx(((1 + 2 / 3) / 3 + 0.5 / 1) / 2)
    assert m["hit_rate"] == 1.0
    assert test.loc[3, "precision"] == pytest.approx(1 / 3)
    assert ranking_metrics(*frames, ks=[3], users="common").equals(common)


def test_conventions_agree_when_every_test_user_has_a_list(spark):
    truth = spark.createDataFrame([(1, 1), (1, 2), (2, 3)], "user_id int, item_id int")
    ranked = spark.createDataFrame([(1, 1, 2), (1, 2, 5), (2, 1, 4), (2, 2, 3)], "user_id int, rank int, item_id int")
    both = ranking_metrics_by_users(ranked, truth, ks=[2])
    assert both["test"].equals(both["common"])
    # user 1: hit at 1 of 2 relevant; user 2: hit at 2 of 1 relevant
    assert both["test"].loc[2, "recall"] == pytest.approx((1 / 2 + 1) / 2)
    assert both["test"].loc[2, "ndcg"] == pytest.approx((1 / (1 + 1 / math.log2(3)) + 1 / math.log2(3)) / 2)


def test_nobody_with_a_list_is_zero_over_test_users_and_undefined_over_common(spark):
    truth = spark.createDataFrame([(1, 1)], "user_id int, item_id int")
    ranked = spark.createDataFrame([(9, 1, 1)], "user_id int, rank int, item_id int")
    both = ranking_metrics_by_users(ranked, truth, ks=[1])
    assert both["test"].loc[1].to_dict() == {m: 0.0 for m in ("precision", "recall", "ndcg", "map", "hit_rate")}
    assert both["common"].attrs["users"] == 0 and both["common"].loc[1].isna().all()
    with pytest.raises(ValueError, match="users must be one of test, common"):
        ranking_metrics(ranked, truth, ks=[1], users="all")


def test_compare_and_lift(frames, spark):
    ranked, truth = frames
    worse = spark.createDataFrame([(1, 1, 9)], "user_id int, rank int, item_id int")
    long = compare_by_k({"als": ranked, "popular": worse}, truth, [3])
    assert list(long.columns) == ["model", "users", "k", "metric", "value"]
    assert long.attrs["users"] == {
        ("als", "test"): 3,
        ("als", "common"): 2,
        ("popular", "test"): 3,
        ("popular", "common"): 1,
    }
    table = lift(long, "als", "popular", 3)
    assert table.loc[("test", "precision"), "als"] == pytest.approx(1 / 3)
    assert table.loc[("common", "precision"), "als"] == pytest.approx(1 / 2)
    assert table.loc[("test", "precision"), "popular"] == 0
    assert math.isnan(table.loc[("test", "precision"), "lift"])
    rows = at_k(long, 3)
    assert list(rows.index) == [("als", "test"), ("als", "common"), ("popular", "test"), ("popular", "common")]
    assert list(rows["averaged over"]) == [3, 2, 3, 1]
    assert rows.loc[("als", "common"), "recall"] == pytest.approx(5 / 6)


def test_metrics_table_and_mlflow_names_keep_both_conventions(frames):
    long = compare_by_k({"ALS": frames[0]}, frames[1], [3])
    table = metrics_table(long, {"rmse": 1.0, "mae": 0.5, "r2": 0.1, "explained_variance": 0.2}, "explicit ALS")
    assert len(table) == 2 * 5 + 4
    rating = table[table["metric"] == "rmse"].iloc[0]
    assert rating["users"] is None and pd.isna(rating["k"])
    assert mlflow_key("ALS", "ndcg", 3, "test") == "test_als_ndcg_at_3"
    assert mlflow_key("most popular", "ndcg", 3, "common") == "test_most_popular_ndcg_at_3_common_users"
    assert mlflow_key("explicit ALS rank 8", "rmse", pd.NA, None) == "test_explicit_als_rank_8_rmse"

"""Splitters on hand-made data: nothing lost or doubled, every user on both sides, same seed same split."""

from __future__ import annotations

import pytest

from refarch.recommender.split import chronological_split, random_split, split, stratified_split

SCHEMA = "user_id int, item_id int, rating double, timestamp long"
# user 1: four rows, user 2: two rows, user 3: one row (cannot be on both sides)
ROWS = [
    (1, 10, 4.0, 100),
    (1, 11, 3.0, 200),
    (1, 12, 5.0, 300),
    (1, 13, 2.0, 400),
    (2, 10, 1.0, 50),
    (2, 14, 5.0, 60),
    (3, 10, 3.0, 10),
]


@pytest.fixture(scope="module")
def ratings(spark):
    return spark.createDataFrame(ROWS, SCHEMA)


@pytest.fixture(scope="module")
def bigger(spark):
    rows = [(u, i, float(1 + (u * i) % 5), u * 1000 + i) for u in range(1, 41) for i in range(1, 1 + u % 7 + 3)]
    return spark.createDataFrame(rows, SCHEMA)


def _rows(df):
    return sorted(tuple(r) for r in df.collect())


def _collect_partition(df, train, test):
    """Train and test rows, checked to be exactly the input together: no row lost, none duplicated."""
    train_rows, test_rows = _rows(train), _rows(test)
    assert sorted(train_rows + test_rows) == _rows(df)
    return train_rows, test_rows


def test_stratified_by_user_halves_each_user(ratings):
    train, test = _collect_partition(ratings, *stratified_split(ratings, 0.5, 7, "user_id"))
    per_user = {u: (sum(r[0] == u for r in train), sum(r[0] == u for r in test)) for u in (1, 2, 3)}
    assert per_user == {1: (2, 2), 2: (1, 1), 3: (1, 0)}


def test_stratified_keeps_every_user_on_both_sides_even_at_high_ratio(ratings):
    train, test = _collect_partition(ratings, *stratified_split(ratings, 0.9, 7, "user_id"))
    assert {r[0] for r in test} == {1, 2}  # user 3 has a single row
    assert {r[0] for r in train} == {1, 2, 3}


def test_same_seed_same_split_other_seed_other_split(bigger):
    a, _ = stratified_split(bigger, 0.75, 1, "user_id")
    b, _ = stratified_split(bigger.repartition(5), 0.75, 1, "user_id")
    c, _ = stratified_split(bigger, 0.75, 2, "user_id")
    assert _rows(a) == _rows(b)
    assert _rows(a) != _rows(c)


def test_stratified_by_item(ratings):
    train, test = _collect_partition(ratings, *stratified_split(ratings, 0.5, 3, "item_id"))
    # item 10 has 3 rows -> round(1.5) = 2 in train; item 11..14 have one row each -> train
    assert sum(r[1] == 10 for r in train) == 2
    assert {r[1] for r in test} == {10}


def test_chronological_puts_the_earliest_in_train(ratings):
    train, test = _collect_partition(ratings, *chronological_split(ratings, 0.5, "user_id"))
    assert [r[3] for r in train if r[0] == 1] == [100, 200]
    assert [r[3] for r in test if r[0] == 1] == [300, 400]
    assert [r[3] for r in test if r[0] == 2] == [60]


def test_random_split_is_a_partition_near_the_ratio(bigger):
    train, test = _collect_partition(bigger, *random_split(bigger, 0.7, 5))
    share = len(train) / (len(train) + len(test))
    assert 0.6 < share < 0.8
    again, _ = random_split(bigger.repartition(3), 0.7, 5)
    assert _rows(again) == train


def test_split_dispatch_and_bad_arguments(ratings):
    train, test = split(ratings, "chronological", 0.5, 1, "user_id")
    assert train.count() + test.count() == len(ROWS)
    with pytest.raises(ValueError, match="unknown split method 'weird'"):
        split(ratings, "weird", 0.5, 1, "user_id")
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        stratified_split(ratings, 1.0, 1, "user_id")

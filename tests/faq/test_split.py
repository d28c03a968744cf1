import pandas as pd
import pytest

from refarch.faq.split import split_by_original


def _dupes(sizes: dict[int, int]) -> pd.DataFrame:
    rows = [(answer * 100 + i, answer) for answer, n in sizes.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["id", "answer_id"])


def test_every_original_is_on_both_sides_with_the_reference_share():
    dupes = _dupes({1: 20, 2: 12, 3: 4, 4: 2})
    train, test = split_by_original(dupes, test_size=0.21, seed=1)
    # floor(n * 0.21), at least one: 4, 2, 1, 1
    assert test.groupby("answer_id").size().to_dict() == {1: 4, 2: 2, 3: 1, 4: 1}
    assert train.groupby("answer_id").size().to_dict() == {1: 16, 2: 10, 3: 3, 4: 1}
    assert set(train["id"]).isdisjoint(test["id"])
    assert len(train) + len(test) == len(dupes)


def test_a_lone_duplicate_stays_in_training_and_the_split_is_repeatable():
    dupes = _dupes({1: 1, 2: 10})
    train, test = split_by_original(dupes, test_size=0.21, seed=5)
    assert 1 not in set(test["answer_id"])
    again, _ = split_by_original(dupes, test_size=0.21, seed=5)
    assert train["id"].tolist() == again["id"].tolist()


def test_test_size_is_checked():
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_by_original(_dupes({1: 3}), test_size=1.0, seed=0)

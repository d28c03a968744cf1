from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from refarch.faq.ranker import FaqRanker
from refarch.faq.split import split_by_original
from refarch.faq.tuning import grid, run_trials

from .conftest import PARAMS


@pytest.fixture(scope="module")
def fitted(small_faq):
    train, test = split_by_original(small_faq.duplicates, test_size=0.21, seed=0)
    return FaqRanker(PARAMS, cleaning="strict").fit(small_faq.originals, train), test


def test_generated_questions_find_their_original(fitted, small_faq):
    ranker, test = fitted
    report = ranker.evaluate(test)
    assert report.n_originals == len(small_faq.originals) >= 20
    assert report.acc_at_1 >= 0.8
    assert report.acc_at_3 >= 0.95
    assert 1.0 <= report.mean_rank < 2.0


def test_top_matches_are_sorted_probabilities_of_known_originals(fitted, small_faq):
    ranker, test = fitted
    dupe = test.iloc[0]
    top = ranker.top(dupe["text"], 5)
    assert len(top) == 5
    probs = [p for _, _, p in top]
    assert probs == sorted(probs, reverse=True)
    assert 0 < sum(probs) <= 1 + 1e-9
    assert {i for i, _, _ in top} <= set(small_faq.originals["id"])
    all_probs = ranker.probabilities([dupe["text"]])[0]
    assert all_probs.sum() == pytest.approx(1.0)
    assert len(ranker.top(dupe["text"], 10_000)) == len(small_faq.originals)


def test_an_original_ranks_itself_first(fitted, small_faq):
    ranker, _ = fitted
    row = small_faq.originals.iloc[3]
    assert ranker.top(row["text"], 1)[0][0] == row["id"]


def test_unknown_originals_and_unfitted_use_are_errors(fitted, small_faq):
    ranker, test = fitted
    with pytest.raises(ValueError, match="does not know"):
        ranker.evaluate(test.assign(answer_id=-1))
    with pytest.raises(RuntimeError, match="not fitted"):
        FaqRanker(PARAMS, cleaning="strict").top("anything", 3)


def test_grid_is_every_combination_and_names_every_hyperparameter():
    values = {"C": [1.0, 10.0], "char_ngrams": [True, False], "word_ngrams": [2], "min_df": [1], "max_features": [None]}
    trials = grid(values)
    assert [(t.C, t.char_ngrams) for t in trials] == [(1.0, True), (1.0, False), (10.0, True), (10.0, False)]
    assert {(t.word_ngrams, t.min_df, t.max_features) for t in trials} == {(2, 1, None)}
    with pytest.raises(ValueError, match=r"unknown \['alpha'\]"):
        grid({**values, "alpha": [1]})
    with pytest.raises(ValueError, match=r"missing \['min_df'\]"):
        grid({k: v for k, v in values.items() if k != "min_df"})


def test_trials_on_spark_match_trials_in_process(spark, small_faq):
    train, valid = split_by_original(small_faq.duplicates, test_size=0.21, seed=0)
    trials = [replace(PARAMS, C=c, char_ngrams=False) for c in (0.01, 10.0)]
    on_spark = run_trials(trials, small_faq.originals, train, valid, "strict", spark=spark)
    local = run_trials(trials, small_faq.originals, train, valid, "strict")
    assert [t.params for t in on_spark] == [t.params for t in local]
    assert np.allclose([t.acc_at_1 for t in on_spark], [t.acc_at_1 for t in local])
    assert on_spark[0].params.C == 10.0  # a tiny C underfits: the best trial comes first


class _KnownProbabilities:
    """Stands in for the fitted scikit-learn pipeline: fixed probabilities per question text."""

    def __init__(self, rows: dict[str, list[float]]) -> None:
        self.rows = rows

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return np.array([self.rows[t] for t in texts])


def test_rank_table_and_report_worked_out_by_hand():
    # four originals (ids 10..40, answer ids 1..4, in the classifier's column order)
    ranker = FaqRanker(PARAMS, cleaning="strict")
    ranker.originals = pd.DataFrame({"id": [10, 20, 30, 40], "answer_id": [1, 2, 3, 4], "text": ["a", "b", "c", "d"]})
    ranker.pipeline = _KnownProbabilities(
        {
            "q1": [0.60, 0.20, 0.10, 0.10],  # true 1: best -> rank 1
            "q2": [0.40, 0.10, 0.30, 0.20],  # true 3: second -> rank 2, 10 predicted
            "q3": [0.10, 0.05, 0.70, 0.15],  # true 2: last -> rank 4, 30 predicted
            "q4": [0.30, 0.20, 0.10, 0.40],  # true 4: best -> rank 1
        }
    )
    questions = pd.DataFrame({"id": [101, 102, 103, 104], "answer_id": [1, 3, 2, 4], "text": ["q1", "q2", "q3", "q4"]})
    table = ranker.rank_table(questions)
    assert table.to_dict("list") == {
        "id": [101, 102, 103, 104],
        "original_id": [10, 30, 20, 40],
        "rank": [1, 2, 4, 1],
        "probability": [0.60, 0.30, 0.05, 0.40],
        "predicted_id": [10, 10, 30, 40],
        "predicted_probability": [0.60, 0.40, 0.70, 0.40],
    }
    report = ranker.evaluate(questions)
    assert report.acc_at_1 == pytest.approx(2 / 4)
    assert report.acc_at_3 == pytest.approx(3 / 4)
    assert report.mean_rank == pytest.approx((1 + 2 + 4 + 1) / 4)
    assert (report.n_questions, report.n_originals) == (4, 4)


def test_a_symmetric_three_original_problem():
    """Three originals of three words each, no word shared: the fit is the same for each class up to
    relabelling, so a question of unknown words gets 1/3 each, and a question with one word of an
    original ranks it first and the other two equally."""
    originals = pd.DataFrame(
        {
            "id": [10, 20, 30],
            "answer_id": [1, 2, 3],
            "text": ["alpha beta gamma", "delta epsilon zeta", "eta theta iota"],
        }
    )
    words = replace(PARAMS, word_ngrams=1, char_ngrams=False)
    ranker = FaqRanker(words, cleaning="strict").fit(originals, originals.iloc[:0])
    unknown = ranker.top("Nothing known here", 3)
    np.testing.assert_allclose([p for _, _, p in unknown], [1 / 3] * 3, atol=1e-6)
    (first, _, p_first), (_, _, p_second), (_, _, p_third) = ranker.top("<p>What is THETA?</p>", 3)
    assert first == 30
    assert p_first > 1 / 3
    assert p_second == pytest.approx(p_third, abs=1e-6)
    assert p_first + p_second + p_third == pytest.approx(1.0)


def test_the_single_question_fast_path_equals_the_pipeline(fitted, small_faq):
    ranker, test = fitted
    scorer = ranker._single()
    assert scorer is not None
    texts = [*test["text"].head(15), "zzzz qqqq", ""]  # and text of unknown n-grams, and no text
    expected = ranker.probabilities(texts)
    for text, row in zip(texts, expected, strict=True):
        np.testing.assert_allclose(scorer.probabilities(text), row, rtol=1e-5, atol=1e-7)


def test_the_fast_path_survives_pickling(fitted, tmp_path):
    import joblib

    ranker, test = fitted
    before = ranker.top(test["text"].iloc[0], 3)
    joblib.dump(ranker, tmp_path / "r.joblib")
    loaded = joblib.load(tmp_path / "r.joblib")
    assert "_scorer" not in loaded.__dict__
    after = loaded.top(test["text"].iloc[0], 3)
    assert [i for i, _, _ in after] == [i for i, _, _ in before]
    np.testing.assert_allclose([p for _, _, p in after], [p for _, _, p in before], rtol=1e-6)

import numpy as np
import pytest

from refarch.faq.pipeline import FaqRanker, RankerParams
from refarch.faq.split import split_by_original
from refarch.faq.tuning import grid, run_trials


@pytest.fixture(scope="module")
def fitted(small_faq):
    train, test = split_by_original(small_faq.duplicates, seed=0)
    return FaqRanker(RankerParams(C=10.0)).fit(small_faq.originals, train), test


def test_generated_questions_find_their_original(fitted, small_faq):
    ranker, test = fitted
    report = ranker.evaluate(test)
    assert report.n_originals == len(small_faq.originals) >= 20
    assert report.acc_at_1 >= 0.8
    assert report.acc_at_3 >= report.acc_at_1
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
        FaqRanker().top("anything", 3)


def test_grid_rejects_unknown_hyperparameters():
    assert len(grid({"C": [1.0, 10.0], "char_ngrams": [True, False]})) == 4
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        grid({"alpha": [1]})


def test_trials_on_spark_match_trials_in_process(spark, small_faq):
    train, valid = split_by_original(small_faq.duplicates, seed=0)
    trials = grid({"C": [0.01, 10.0], "char_ngrams": [False]})
    on_spark = run_trials(trials, small_faq.originals, train, valid, spark=spark)
    local = run_trials(trials, small_faq.originals, train, valid)
    assert [t.params for t in on_spark] == [t.params for t in local]
    assert np.allclose([t.acc_at_1 for t in on_spark], [t.acc_at_1 for t in local])
    assert on_spark[0].params.C == 10.0  # a tiny C underfits: the best trial comes first


def test_rank_table_agrees_with_the_report(fitted):
    ranker, test = fitted
    table = ranker.rank_table(test)
    report = ranker.evaluate(test)
    assert len(table) == len(test)
    assert (table["rank"] == 1).mean() == pytest.approx(report.acc_at_1)
    assert table["rank"].mean() == pytest.approx(report.mean_rank)
    first = table["rank"] == 1
    assert (table.loc[first, "predicted_id"] == table.loc[first, "original_id"]).all()
    assert (table["predicted_probability"] >= table["probability"]).all()


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

import numpy as np
import pytest
from sklearn.metrics import top_k_accuracy_score

from refarch.faq.metrics import ranking_report, true_ranks


def test_ranks_worked_out_by_hand():
    scores = np.array(
        [
            [0.7, 0.2, 0.1],  # true 0 -> rank 1
            [0.5, 0.3, 0.2],  # true 2 -> rank 3
            [0.1, 0.6, 0.3],  # true 2 -> rank 2
            [0.2, 0.3, 0.5],  # true 2 -> rank 1
        ]
    )
    true = np.array([0, 2, 2, 2])
    assert true_ranks(scores, true).tolist() == [1, 3, 2, 1]
    report = ranking_report(scores, true)
    assert report.acc_at_1 == pytest.approx(0.5)
    assert report.acc_at_3 == pytest.approx(1.0)
    assert report.mean_rank == pytest.approx(7 / 4)
    assert (report.n_questions, report.n_originals) == (4, 3)
    # agrees with scikit-learn where there are no ties
    assert report.acc_at_1 == pytest.approx(top_k_accuracy_score(true, scores, k=1, labels=[0, 1, 2]))
    assert top_k_accuracy_score(true, scores, k=2, labels=[0, 1, 2]) == pytest.approx(
        np.mean(true_ranks(scores, true) <= 2)
    )


def test_ties_count_against_the_model():
    constant = np.full((2, 4), 0.25)
    assert true_ranks(constant, np.array([0, 3])).tolist() == [4, 4]
    assert ranking_report(constant, np.array([0, 3])).acc_at_1 == 0.0


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="one true column per question"):
        true_ranks(np.zeros((2, 3)), np.array([0]))
    with pytest.raises(ValueError, match="no questions"):
        ranking_report(np.zeros((0, 3)), np.array([], dtype=int))

"""RMSE, MAE and R² computed by hand on four rows."""

import math

import pytest

from refarch.rmodel.metrics import regression_report


def test_metrics_by_hand():
    # errors 0, 0, 0, 2: MSE 1, MAE 0.5; mean 2.5, SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5 -> R² = 1 - 4/5
    r = regression_report([1, 2, 3, 4], [1, 2, 3, 6])
    assert (r.rmse, r.mae, r.n) == (1.0, 0.5, 4)
    assert r.r2 == pytest.approx(0.2)


def test_predicting_the_mean_scores_zero_and_a_perfect_model_one():
    assert regression_report([1, 2, 3, 4], [2.5] * 4).r2 == 0.0
    perfect = regression_report([326.0, 18823.0], [326.0, 18823.0])
    assert (perfect.rmse, perfect.mae, perfect.r2) == (0.0, 0.0, 1.0)
    assert math.isnan(regression_report([5, 5], [5, 6]).r2)  # no variance to explain


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="one length"):
        regression_report([1, 2], [1])
    with pytest.raises(ValueError, match="no rows"):
        regression_report([], [])
    with pytest.raises(ValueError, match="missing or infinite"):
        regression_report([1, 2], [1, float("nan")])

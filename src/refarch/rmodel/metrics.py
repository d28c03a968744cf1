"""Regression metrics on the held-out rows: RMSE, MAE and R²."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class RegressionReport:
    rmse: float
    mae: float
    r2: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def regression_report(y_true: object, y_pred: object) -> RegressionReport:
    """RMSE and MAE in the target's unit; R² = 1 - SS_res / SS_tot (0 for predicting the mean)."""
    truth = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    if truth.shape != pred.shape or truth.ndim != 1:
        raise ValueError(f"expected two vectors of one length, got {truth.shape} and {pred.shape}")
    if len(truth) == 0:
        raise ValueError("no rows to evaluate")
    if not np.isfinite(pred).all():
        raise ValueError("the model predicted a missing or infinite value")
    error = pred - truth
    total = float(((truth - truth.mean()) ** 2).sum())
    r2 = 1.0 - float((error**2).sum()) / total if total > 0 else float("nan")
    return RegressionReport(
        rmse=float(np.sqrt((error**2).mean())), mae=float(np.abs(error).mean()), r2=r2, n=len(truth)
    )

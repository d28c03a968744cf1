"""Ranking metrics of the reference: Acc@k and the mean rank of the true original among all originals."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class RankingReport:
    acc_at_1: float
    acc_at_3: float
    mean_rank: float
    n_questions: int
    n_originals: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def true_ranks(scores: np.ndarray, true_columns: np.ndarray) -> np.ndarray:
    """1-based rank of each row's true column; ties count against the model (a constant scorer ranks last)."""
    scores = np.asarray(scores, dtype=float)
    true_columns = np.asarray(true_columns, dtype=int)
    if scores.ndim != 2 or len(scores) != len(true_columns):
        raise ValueError("scores must be (questions x originals) with one true column per question")
    true_scores = scores[np.arange(len(scores)), true_columns][:, None]
    at_least_as_good = (scores >= true_scores).sum(axis=1)  # includes the true column itself
    return at_least_as_good.astype(int)


def ranking_report(scores: np.ndarray, true_columns: np.ndarray) -> RankingReport:
    ranks = true_ranks(scores, true_columns)
    if len(ranks) == 0:
        raise ValueError("no questions to evaluate")
    return RankingReport(
        acc_at_1=float(np.mean(ranks <= 1)),
        acc_at_3=float(np.mean(ranks <= 3)),
        mean_rank=float(np.mean(ranks)),
        n_questions=len(ranks),
        n_originals=int(scores.shape[1]),
    )

"""A split stratified by original: every original keeps duplicates on both sides.

Same rule as the reference: per original, `floor(n * test_size)` duplicates (at least
one) go to the test side, so an original with few duplicates is still tested.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def split_by_original(
    duplicates: pd.DataFrame, *, test_size: float, seed: int, label: str = "answer_id"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) duplicates; every original with two or more duplicates has some in each."""
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, not {test_size}")
    rng = np.random.default_rng(seed)
    test_index: list[int] = []
    for _, group in duplicates.groupby(label, sort=True):
        if len(group) < 2:
            continue  # a single duplicate stays in training: the original needs an example
        n = max(1, math.floor(len(group) * test_size))
        test_index.extend(rng.choice(group.index.to_numpy(), size=n, replace=False).tolist())
    is_test = duplicates.index.isin(test_index)
    return duplicates[~is_test].reset_index(drop=True), duplicates[is_test].reset_index(drop=True)

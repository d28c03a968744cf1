"""Tiny feature tables for the training and scoring tests."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from refarch.maintenance.features import FeatureSpec, feature_columns
from refarch.maintenance.labels import CLASSES
from refarch.maintenance.settings import Train

# The windows the hand-worked values of these tests assume (conf/maintenance.yml may differ).
SPEC = FeatureSpec(short_hours=3, long_hours=24, error_hours=24, step_hours=3)


def train_settings(**changes: object) -> Train:
    """Training settings for tiny data, with `changes` on top."""
    base = {
        "algorithm": "random_forest",
        "num_trees": 10,
        "max_depth": 5,
        "max_iter": 10,
        "negative_fraction": 1.0,
        "class_weight_power": 0.5,
        "seed": 7,
    }
    return Train.model_validate({**base, **changes})


def tiny_features(days: int = 4, machines: int = 3, seed: int = 0) -> pd.DataFrame:
    """Feature rows every 3 hours where failing rows carry an obvious signal in volt_mean_3h."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2015-01-01", periods=days * 8, freq="3h")
    rows = []
    for m in range(1, machines + 1):
        for k, t in enumerate(times):
            label = CLASSES[k % 5] if k % 3 == 0 else "none"
            values = {c: float(rng.normal()) for c in feature_columns(SPEC)}
            for c in ("volt_mean_3h", "volt_mean_24h", "rotate_mean_3h", "pressure_mean_3h", "vibration_mean_3h"):
                values[c] = 170.0 + 40.0 * CLASSES.index(label)
            values["age"] = 5
            rows.append({"machineID": m, "datetime": t, "model": f"model{m}", **values, "label": label})
    df = pd.DataFrame(rows)
    df["age"] = df["age"].astype("int32")
    return df


@pytest.fixture(scope="session")
def mlflow_experiment(config):
    from refarch.runtime.tracking import configure_mlflow

    return configure_mlflow(config, "maintenance-tests")


@pytest.fixture()
def features_df(spark):
    return spark.createDataFrame(tiny_features())


def day(d: int) -> dt.date:
    return dt.date(2015, 1, d)

"""One scikit-learn detector per (device, sensor): build, fit, score, and (de)serialize it.

OneClassSVM (after StandardScaler) is the default, IsolationForest the option. Scores are
`-decision_function`: higher means more anomalous, and a score above 0 is flagged, the
detector's own boundary (nu / contamination set how much of the training data lies outside).

Models are stored with joblib, scikit-learn's documented persistence, in our own container:
only load blobs this pipeline wrote.
"""

from __future__ import annotations

import io
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from refarch.anomaly.settings import ModelSettings

MODEL_FILE = "model.joblib"


def build_detector(settings: ModelSettings) -> Pipeline:
    if settings.algorithm == "iforest":
        p = settings.iforest
        return make_pipeline(
            IsolationForest(
                n_estimators=p.n_estimators,
                contamination=p.contamination,
                random_state=p.random_state,
            )
        )
    p = settings.ocsvm
    return make_pipeline(StandardScaler(), OneClassSVM(nu=p.nu, gamma=p.gamma, kernel=p.kernel))


def feature_matrix(pdf: pd.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    return pdf.loc[:, list(features)].to_numpy(dtype=float)


def fit_detector(pdf: pd.DataFrame, settings: ModelSettings) -> Pipeline:
    return build_detector(settings).fit(feature_matrix(pdf, settings.features))


def score_detector(model: Pipeline, pdf: pd.DataFrame, features: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(score, is_anomaly) per row: score = -decision_function, flagged when score > 0."""
    scores = -model.decision_function(feature_matrix(pdf, features))
    return scores, scores > 0


def model_blob(prefix: str, device: str, sensor: str, version: str) -> str:
    """`models/<device>/<sensor>/<version>/model.joblib`."""
    return f"{prefix.rstrip('/')}/{device}/{sensor}/{version}/{MODEL_FILE}"


def dumps(model: Any) -> bytes:
    buf = io.BytesIO()
    joblib.dump(model, buf)
    return buf.getvalue()


def loads(data: bytes) -> Any:
    return joblib.load(io.BytesIO(data))

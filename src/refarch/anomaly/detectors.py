"""One scikit-learn detector per (device, sensor): build, fit, score, (de)serialize it, and score many at once.

OneClassSVM (after StandardScaler) is the default, IsolationForest the option. Scores are
`-decision_function`: higher means more anomalous, and a score above 0 is flagged, the
detector's own boundary (nu / contamination set how much of the training data lies outside).

Models are pickled (scikit-learn's documented persistence; joblib's wrapper only pays off for
large arrays, and these models hold a few dozen numbers). Only load blobs this pipeline wrote.

`OcsvmBank` holds the fitted numbers of many StandardScaler + RBF OneClassSVM pipelines as
flat arrays and scores all their rows in a few numpy operations: the same decision function
libsvm evaluates, without a Python call per model. This module imports no Spark and no refarch
configuration: the registered model set uses it where refarch is not installed.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from refarch.anomaly.settings import ModelSettings


def build_detector(settings: ModelSettings) -> Pipeline:
    from sklearn.ensemble import IsolationForest
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import OneClassSVM

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


def feature_matrix(pdf: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    return pdf.loc[:, list(features)].to_numpy(dtype=float)


def fit_detector(pdf: pd.DataFrame, settings: ModelSettings) -> Pipeline:
    return fit_matrix(feature_matrix(pdf, settings.features), settings)


def fit_matrix(x: np.ndarray, settings: ModelSettings) -> Pipeline:
    return build_detector(settings).fit(x)


def fit_many(x: np.ndarray, starts: np.ndarray, settings: ModelSettings) -> list[Any]:
    """One detector per group `x[starts[i]:starts[i + 1]]` (finite rows only): a fitted pipeline, or
    the exception that group raised.

    The same pipelines `fit_matrix` builds, without what makes 10,000 small fits slow: the scalers'
    means and variances come from a few numpy operations over all groups at once (the formula
    StandardScaler uses), and scikit-learn's per-call parameter checks run for the first group only.
    """
    import sklearn

    count = len(starts) - 1
    if settings.algorithm == "ocsvm":
        mean, var, scale = scaler_stats(x, starts)

    def fit(i: int) -> Any:
        group = x[starts[i] : starts[i + 1]]
        try:
            if settings.algorithm == "ocsvm":
                return _fit_ocsvm(group, mean[i], var[i], scale[i], settings)
            return fit_matrix(group, settings)
        except Exception as err:  # one group's failure is that group's
            return err

    if not count:
        return []
    fitted = [fit(0)]  # checked in full once: the settings are the same for every group
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        fitted.extend(fit(i) for i in range(1, count))
    return fitted


def scaler_stats(x: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """StandardScaler's mean_, var_ and scale_ of each group, all groups in one pass.

    The corrected two-pass variance and the near-constant rule of `StandardScaler.fit`: a feature
    whose variance is within rounding of zero is scaled by 1.
    """
    first = starts[:-1]
    n = np.diff(starts).astype(float)[:, None]
    mean = np.add.reduceat(x, first, axis=0) / n
    centred = x - np.repeat(mean, np.diff(starts), axis=0)
    correction = np.add.reduceat(centred, first, axis=0)
    var = (np.add.reduceat(centred**2, first, axis=0) - correction**2 / n) / n
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    return mean, var, scale


def _fit_ocsvm(x: np.ndarray, mean: np.ndarray, var: np.ndarray, scale: np.ndarray, settings: ModelSettings) -> Any:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import OneClassSVM

    scaler = StandardScaler()
    scaler.mean_, scaler.var_, scaler.scale_ = mean.copy(), var.copy(), scale.copy()
    scaler.n_samples_seen_, scaler.n_features_in_ = len(x), x.shape[1]
    p = settings.ocsvm
    svm = OneClassSVM(nu=p.nu, gamma=p.gamma, kernel=p.kernel).fit((x - mean) / scale)
    return Pipeline([("standardscaler", scaler), ("oneclasssvm", svm)])


def score_detector(model: Any, pdf: pd.DataFrame, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(score, is_anomaly) per row: score = -decision_function, flagged when score > 0."""
    scores = -model.decision_function(feature_matrix(pdf, features))
    return scores, scores > 0


def dumps(model: Any) -> bytes:
    return pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes | memoryview) -> Any:
    return pickle.loads(data)


# ---- many OneClassSVMs at once ---------------------------------------------------------


def bankable(model: Any) -> bool:
    """A StandardScaler + RBF OneClassSVM pipeline: the shape `OcsvmBank` scores exactly."""
    steps = getattr(model, "steps", None)
    if not steps or len(steps) != 2:
        return False
    scaler, svm = steps[0][1], steps[1][1]
    return (
        type(scaler).__name__ == "StandardScaler"
        and getattr(scaler, "with_mean", False)
        and getattr(scaler, "with_std", False)
        and type(svm).__name__ == "OneClassSVM"
        and svm.kernel == "rbf"
    )


@dataclass(frozen=True)
class OcsvmBank:
    """The numbers of G fitted pipelines, model i's support vectors at rows sv_start[i]:sv_start[i+1].

    For a row x of model i: z = (x - mean[i]) / scale[i];
    decision = sum_j dual[j] * exp(-gamma[i] * |z - sv[j]|^2) + intercept[i] over i's support vectors.
    """

    mean: np.ndarray  # (G, F)
    scale: np.ndarray  # (G, F)
    gamma: np.ndarray  # (G,)
    intercept: np.ndarray  # (G,)
    sv_start: np.ndarray  # (G + 1,) int64
    sv: np.ndarray  # (total support vectors, F)
    dual: np.ndarray  # (total support vectors,)

    @classmethod
    def from_models(cls, models: Sequence[Any]) -> OcsvmBank:
        if not models:
            raise ValueError("an empty bank")
        if not all(bankable(m) for m in models):
            raise ValueError("only StandardScaler + RBF OneClassSVM pipelines go into a bank")
        scalers = [m.steps[0][1] for m in models]
        svms = [m.steps[1][1] for m in models]
        counts = np.array([s.support_vectors_.shape[0] for s in svms], dtype=np.int64)
        return cls(
            mean=np.stack([s.mean_ for s in scalers]).astype(float),
            scale=np.stack([s.scale_ for s in scalers]).astype(float),
            gamma=np.array([float(s._gamma) for s in svms]),
            intercept=np.array([float(s.intercept_[0]) for s in svms]),
            sv_start=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            sv=np.concatenate([s.support_vectors_ for s in svms]).astype(float),
            dual=np.concatenate([s.dual_coef_.ravel() for s in svms]).astype(float),
        )

    def __len__(self) -> int:
        return int(self.gamma.shape[0])

    def decision_function(self, model: np.ndarray, x: np.ndarray, max_pairs: int = 2_000_000) -> np.ndarray:
        """decision_function of model `model[r]` (index into the bank) at row `x[r]`, for every r."""
        model = np.asarray(model, dtype=np.int64)
        x = np.asarray(x, dtype=float)
        out = np.empty(len(model))
        per_row = self.sv_start[model + 1] - self.sv_start[model]
        first = 0
        while first < len(model):  # chunks of rows whose (row, support vector) pairs fit in memory
            pairs = np.cumsum(per_row[first:])
            last = first + max(1, int(np.searchsorted(pairs, max_pairs, side="right")))
            out[first:last] = self._decide(model[first:last], x[first:last], per_row[first:last])
            first = last
        return out

    def _decide(self, model: np.ndarray, x: np.ndarray, per_row: np.ndarray) -> np.ndarray:
        z = (x - self.mean[model]) / self.scale[model]
        row = np.repeat(np.arange(len(model)), per_row)
        # index of each pair's support vector: the row's model's first one, plus 0..count-1
        within = np.arange(len(row)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        sv = self.sv_start[model][row] + within
        diff = z[row] - self.sv[sv]
        k = np.exp(-self.gamma[model][row] * np.einsum("ij,ij->i", diff, diff))
        return np.bincount(row, weights=self.dual[sv] * k, minlength=len(model)) + self.intercept[model]

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **{f: getattr(self, f) for f in self.__dataclass_fields__})
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> OcsvmBank:
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as npz:
            return cls(**{f: npz[f] for f in cls.__dataclass_fields__})

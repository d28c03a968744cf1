"""The model set in MLflow: one registered model whose manifest lists every group's model blob.

Thousands of per-group models do not belong in a registry one by one; the registered
`anomaly` model is a pyfunc holding the manifest (version, algorithm, features, interval
length, and the blob of each (device, sensor) model). Scoring reads the manifest from the
alias (`champion`); the pyfunc can also score a small frame itself, loading the groups'
models from Blob storage on demand.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd

from refarch.anomaly.detectors import loads, score_detector

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from refarch.runtime.blob import BlobLocation

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    version: str
    algorithm: str
    features: tuple[str, ...]
    interval_seconds: int
    container: str
    models: tuple[dict[str, Any], ...]  # {"device", "sensor", "blob", "intervals"}
    created_at: str = ""

    def to_json(self) -> str:
        data = {**self.__dict__, "features": list(self.features), "models": list(self.models)}
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["features"] = tuple(data["features"])
        data["models"] = tuple(data["models"])
        return cls(**data)

    def frame(self, spark: SparkSession) -> DataFrame:
        """device, sensor, blob, model_version: the table scoring joins intervals with."""
        rows = [(m["device"], m["sensor"], m["blob"], self.version) for m in self.models]
        return spark.createDataFrame(rows, "device string, sensor string, blob string, model_version string")


def build_manifest(
    trained: pd.DataFrame,
    version: str,
    algorithm: str,
    features: tuple[str, ...],
    interval_seconds: int,
    container: str,
) -> Manifest:
    ok = trained[trained["status"] == "ok"].sort_values(["device", "sensor"])
    models = tuple(
        {"device": r.device, "sensor": r.sensor, "blob": r.blob, "intervals": int(r.rows)}
        for r in ok.itertuples(index=False)
    )
    return Manifest(
        version,
        algorithm,
        tuple(features),
        int(interval_seconds),
        container,
        models,
        dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


class ModelSet(mlflow.pyfunc.PythonModel):
    """Pyfunc over the manifest: input rows (device, sensor, features) → score, is_anomaly."""

    def load_context(self, context: Any) -> None:
        self.manifest = Manifest.from_json(Path(context.artifacts["manifest"]).read_text())
        self._blobs = {(m["device"], m["sensor"]): m["blob"] for m in self.manifest.models}
        self._cache: dict[str, Any] = {}
        self._location: BlobLocation | None = None

    def _model(self, blob: str) -> Any:
        if blob not in self._cache:
            if self._location is None:
                from refarch.runtime.blob import blob_location
                from refarch.runtime.config import load_config

                self._location = blob_location(load_config())
            self._cache[blob] = loads(self._location.container_client().download_blob(blob).readall())
        return self._cache[blob]

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        out = []
        for (device, sensor), group in model_input.groupby(["device", "sensor"], sort=False):
            blob = self._blobs.get((str(device), str(sensor)))
            if blob is None:
                out.append(
                    pd.DataFrame(
                        {"score": float("nan"), "is_anomaly": False, "status": "missing_model"}, index=group.index
                    )
                )
                continue
            scores, flags = score_detector(self._model(blob), group, self.manifest.features)
            out.append(pd.DataFrame({"score": scores, "is_anomaly": flags, "status": "ok"}, index=group.index))
        if not out:
            return pd.DataFrame(columns=["score", "is_anomaly", "status"])
        return pd.concat(out).loc[model_input.index]


def register_model_set(manifest: Manifest, model_name: str, alias: str) -> str:
    """Log the pyfunc with its manifest in the active run, register it, point `alias` at it."""
    from mlflow.models import infer_signature

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MANIFEST_FILE
        path.write_text(manifest.to_json())
        example = pd.DataFrame(
            {
                "device": ["dev-001"],
                "sensor": ["temperature"],
                **{f: [1 if f == "count" else 0.0] for f in manifest.features},
            }
        )
        signature = infer_signature(example, pd.DataFrame({"score": [0.0], "is_anomaly": [False], "status": ["ok"]}))
        info = mlflow.pyfunc.log_model(
            name="model_set",
            python_model=ModelSet(),
            artifacts={"manifest": str(path)},
            signature=signature,
            pip_requirements=["scikit-learn", "pandas", "joblib", "azure-storage-blob", "refarch"],
            registered_model_name=model_name,
        )
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(model_name, alias, version)
    log.info("registered %s version %s (%d models) as @%s", model_name, version, len(manifest.models), alias)
    return version


def load_manifest(model_name: str, alias: str) -> Manifest:
    """The manifest of the model set behind `models:/<name>@<alias>` (clear error when none)."""
    uri = f"models:/{model_name}@{alias}"
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri)
    except Exception as err:
        raise LookupError(
            f"no registered model set at {uri}: run the anomaly_training job first ({type(err).__name__})"
        ) from None
    found = sorted(Path(local).rglob(MANIFEST_FILE))
    if not found:
        raise LookupError(f"{uri} has no {MANIFEST_FILE}")
    return Manifest.from_json(found[0].read_text())

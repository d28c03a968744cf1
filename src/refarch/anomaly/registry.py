"""The model set in MLflow: one registered model holding every group's model, packed in shards.

Thousands of per-group models do not belong in a registry one by one; the registered
`anomaly` model is a pyfunc whose manifest lists the version, algorithm, features, interval
length, the shards and, for each (device, sensor), its shard, its slot and the byte range of
its own pickle. Scoring jobs read the shards from Blob storage (in parallel, one per task); the
registered model carries a copy of them as artifacts, with refarch's code and pinned
requirements, so it predicts wherever MLflow loads it — Model Serving, `mlflow models serve`,
a Python without refarch — with no Blob credential at predict time.
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
import numpy as np
import pandas as pd

from refarch.anomaly.shards import ShardScorer

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from refarch.runtime.blob import BlobLocation

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
SHARDS_DIR = "shards"
MODEL_FRAME_DDL = (
    "device string, sensor string, blob string, slot int, offset long, length long, "
    "bank_offset long, bank_length long, model_version string"
)


@dataclass(frozen=True)
class Manifest:
    version: str
    algorithm: str
    features: tuple[str, ...]
    interval_seconds: int
    container: str
    shard_count: int  # the `model.shards` the set was trained with: scoring partitions the same way
    shards: tuple[dict[str, Any], ...]  # {"shard", "blob", "models", "bank": [offset, length] | None}
    models: tuple[dict[str, Any], ...]  # {"device", "sensor", "intervals", "shard", "slot", "offset", "length"}
    created_at: str = ""

    def to_json(self) -> str:
        data = {
            **self.__dict__,
            "features": list(self.features),
            "shards": list(self.shards),
            "models": list(self.models),
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["features"] = tuple(data["features"])
        data["shards"] = tuple(data["shards"])
        data["models"] = tuple(data["models"])
        return cls(**data)

    def shard(self, number: int) -> dict[str, Any]:
        return next(s for s in self.shards if s["shard"] == number)

    def index(self) -> pd.DataFrame:
        """One row per model: device, sensor, blob, slot, offset, length, bank_offset, bank_length, model_version."""
        shards = pd.DataFrame(
            [
                {
                    "shard": s["shard"],
                    "blob": s["blob"],
                    "bank_offset": s["bank"][0] if s["bank"] else None,
                    "bank_length": s["bank"][1] if s["bank"] else None,
                }
                for s in self.shards
            ],
            columns=["shard", "blob", "bank_offset", "bank_length"],
        )
        models = pd.DataFrame(list(self.models), columns=["device", "sensor", "shard", "slot", "offset", "length"])
        out = models.merge(shards, on="shard", how="left").assign(model_version=self.version)
        for c in ("offset", "length", "bank_offset", "bank_length"):
            out[c] = out[c].astype("Int64")
        out["slot"] = out["slot"].astype("Int32")
        return out.loc[:, [c.split(" ")[0] for c in MODEL_FRAME_DDL.split(", ")]]

    def frame(self, spark: SparkSession) -> DataFrame:
        """The index as the table scoring joins intervals with (`MODEL_FRAME_DDL`)."""
        return spark.createDataFrame(self.index(), MODEL_FRAME_DDL)


def build_manifest(
    trained: pd.DataFrame,
    version: str,
    algorithm: str,
    features: tuple[str, ...],
    interval_seconds: int,
    container: str,
    shard_count: int,
) -> Manifest:
    """The set from `train_models`' status rows: only groups that trained (and were uploaded)."""
    ok = trained[trained["status"] == "ok"].sort_values(["device", "sensor"])
    models = tuple(
        {
            "device": r.device,
            "sensor": r.sensor,
            "intervals": int(r.rows),
            "shard": int(r.shard),
            "slot": int(r.slot),
            "offset": int(r.offset),
            "length": int(r.length),
        }
        for r in ok.itertuples(index=False)
    )
    shards = []
    for shard, rows in ok.groupby("shard", sort=True):
        first = rows.iloc[0]
        bank = None if pd.isna(first["bank_offset"]) else [int(first["bank_offset"]), int(first["bank_length"])]
        shards.append({"shard": int(shard), "blob": first["blob"], "models": len(rows), "bank": bank})
    return Manifest(
        version,
        algorithm,
        tuple(features),
        int(interval_seconds),
        container,
        int(shard_count),
        tuple(shards),
        models,
        dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def shard_file(folder: Path, blob: str) -> Path:
    return folder / Path(blob).name


def download_shards(manifest: Manifest, location: BlobLocation, folder: Path) -> Path:
    """The set's shard blobs as files (what the registered model carries)."""
    container = location.container_client()
    folder.mkdir(parents=True, exist_ok=True)
    for s in manifest.shards:
        with shard_file(folder, s["blob"]).open("wb") as fh:
            container.download_blob(s["blob"]).readinto(fh)
    return folder


class ModelSet(mlflow.pyfunc.PythonModel):
    """Pyfunc over the manifest and its shards: rows (device, sensor, features) → score, is_anomaly, status."""

    def load_context(self, context: Any) -> None:
        self.manifest = Manifest.from_json(Path(context.artifacts["manifest"]).read_text())
        self._folder = Path(context.artifacts[SHARDS_DIR])
        self._index = self.manifest.index().set_index(["device", "sensor"])
        self._scorers: dict[str, ShardScorer] = {}

    def _scorer(self, blob: str, bank_offset: Any, bank_length: Any) -> ShardScorer:
        if blob not in self._scorers:
            bank = None if pd.isna(bank_offset) else (int(bank_offset), int(bank_length))
            self._scorers[blob] = ShardScorer(shard_file(self._folder, blob).read_bytes(), bank)
        return self._scorers[blob]

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        keys = pd.MultiIndex.from_arrays([model_input["device"].astype(str), model_input["sensor"].astype(str)])
        found = self._index.reindex(keys)
        found.index = model_input.index
        rows = pd.concat([model_input.loc[:, list(self.manifest.features)], found], axis=1)
        out = pd.DataFrame({"score": np.nan, "is_anomaly": False, "status": "missing_model"}, index=model_input.index)
        for blob, part in rows[rows["blob"].notna()].groupby("blob", sort=False):
            scorer = self._scorer(str(blob), part["bank_offset"].iat[0], part["bank_length"].iat[0])
            scores = scorer.score(part, self.manifest.features)
            out.loc[part.index, "score"] = scores
            out.loc[part.index, "is_anomaly"] = scores > 0
            out.loc[part.index, "status"] = "ok"
        return out


def register_model_set(manifest: Manifest, shard_dir: Path, model_name: str, alias: str) -> str:
    """Log the pyfunc with its manifest, shards, code and pinned requirements; register it; point `alias` at it."""
    from mlflow.models import infer_signature

    from refarch.runtime.tracking import model_code_paths, pinned_requirements

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
            artifacts={"manifest": str(path), SHARDS_DIR: str(shard_dir)},
            signature=signature,
            code_paths=model_code_paths(),
            pip_requirements=pinned_requirements("numpy", "pandas", "scikit-learn"),
            registered_model_name=model_name,
        )
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(model_name, alias, version)
    log.info("registered %s version %s (%d models) as @%s", model_name, version, len(manifest.models), alias)
    return version


def load_manifest(model_name: str, alias: str) -> Manifest:
    """The manifest of the model set behind `models:/<name>@<alias>` (clear error when none).

    Only the manifest is downloaded, not the shards the model carries.
    """
    uri = f"models:/{model_name}@{alias}"
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/artifacts/{MANIFEST_FILE}")
    except Exception as err:
        raise LookupError(
            f"no registered model set at {uri}: run the anomaly_training job first ({type(err).__name__})"
        ) from None
    return Manifest.from_json(Path(local).read_text())

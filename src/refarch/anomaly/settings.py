"""The pipeline's settings from `conf/anomaly.yml`, validated once (errors name file and key)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from refarch.runtime.config import Config

FEATURES = ("mean", "std", "min", "max", "count")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableNames(_Strict):
    readings: str = "anomaly_readings"
    quarantine: str = "anomaly_quarantine"
    labels: str = "anomaly_labels"
    intervals: str = "anomaly_intervals"
    predictions: str = "anomaly_predictions"
    run_log: str = "anomaly_run_log"
    quality: str = "anomaly_quality"


class BlobPrefixes(_Strict):
    raw_prefix: str = "raw/readings"
    labels_prefix: str = "raw/labels"
    models_prefix: str = "models"
    predictions_prefix: str = "predictions"


class IngestSettings(_Strict):
    mode: Literal["mirror", "autoloader"] = "mirror"
    landing_dir: str
    checkpoint_dir: str
    source_url: str | None = None
    max_bad_share: float = Field(0.05, ge=0, le=1)


class IntervalSettings(_Strict):
    seconds: int = Field(60, ge=1, le=3600)

    @field_validator("seconds")
    @classmethod
    def _divides_hour(cls, v: int) -> int:
        if 3600 % v:
            raise ValueError("must divide an hour (e.g. 30, 60, 300, 900)")
        return v


class OcsvmSettings(_Strict):
    nu: float = Field(0.01, gt=0, le=1)
    gamma: str | float = 0.05
    kernel: Literal["rbf", "linear", "poly", "sigmoid"] = "rbf"


class IforestSettings(_Strict):
    n_estimators: int = Field(100, ge=1)
    contamination: float | Literal["auto"] = 0.02
    random_state: int = 0


class ModelSettings(_Strict):
    algorithm: Literal["ocsvm", "iforest"] = "ocsvm"
    features: tuple[str, ...] = FEATURES
    min_intervals: int = Field(10, ge=2)
    ocsvm: OcsvmSettings = Field(default_factory=OcsvmSettings)
    iforest: IforestSettings = Field(default_factory=IforestSettings)

    @field_validator("features")
    @classmethod
    def _known_features(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [f for f in v if f not in FEATURES]
        if unknown or not v:
            raise ValueError(f"features must be a non-empty subset of {', '.join(FEATURES)}")
        return v


class RegistrySettings(_Strict):
    alias: str = "champion"


class GeneratorSettings(_Strict):
    devices: int = Field(10, ge=1)
    sensors: int = Field(5, ge=1)
    step_seconds: int = Field(5, ge=1, le=3600)
    anomaly_rate: float = Field(0.15, ge=0, le=1)
    seed: int = 42


class AnomalySettings(_Strict):
    tables: TableNames = Field(default_factory=TableNames)
    blob: BlobPrefixes = Field(default_factory=BlobPrefixes)
    ingest: IngestSettings
    intervals: IntervalSettings = Field(default_factory=IntervalSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings)


def load_settings(config: Config) -> AnomalySettings:
    """`conf/anomaly.yml` (with its per-target overrides) as typed settings."""
    return config.section(AnomalySettings)

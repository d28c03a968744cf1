"""The settings of the whole `conf/anomaly.yml` (after its `targets:` block is merged for the target).

The values live once, in conf: these models hold no defaults, only the shape and the
constraints, so a missing or misspelt key fails at bootstrap naming the file and the key.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, get_args

from pydantic import Field, StringConstraints, field_validator

from refarch.runtime import Strict
from refarch.runtime.params import TABLE_NAME

FEATURES = ("mean", "std", "min", "max", "count")  # what an interval offers a detector
Algorithm = Literal["ocsvm", "iforest"]
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)

TableName = Annotated[str, StringConstraints(pattern=TABLE_NAME.pattern)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]


def _divides_an_hour(seconds: int) -> int:
    if 3600 % seconds:
        raise ValueError("must divide an hour (e.g. 30, 60, 300, 900)")
    return seconds


class TableNames(Strict):
    readings: TableName
    quarantine: TableName
    labels: TableName
    intervals: TableName
    predictions: TableName
    run_log: TableName
    quality: TableName


class BlobPrefixes(Strict):
    raw_prefix: str
    labels_prefix: str
    models_prefix: str
    predictions_prefix: str


class LandSettings(Strict):
    """Where 01_land takes readings from: `generated`, `none`, or a file path / http(s) URL."""

    source: str = Field(min_length=1)
    sha256: Sha256 | None


class IngestSettings(Strict):
    mode: Literal["mirror", "autoloader"]
    landing_dir: str
    checkpoint_dir: str
    max_bad_share: float = Field(ge=0, le=1)


class IntervalSettings(Strict):
    seconds: int = Field(ge=1, le=3600)

    _hour = field_validator("seconds")(_divides_an_hour)


class WindowSettings(Strict):
    """Window lengths in hours, each ending at the job's `window_end` (or the newest reading's hour)."""

    train_hours: int = Field(ge=1, le=24 * 90)
    score_hours: int = Field(ge=1, le=24 * 7)


class OcsvmSettings(Strict):
    nu: float = Field(gt=0, le=1)
    gamma: str | float
    kernel: Literal["rbf", "linear", "poly", "sigmoid"]


class IforestSettings(Strict):
    n_estimators: int = Field(ge=1)
    contamination: float | Literal["auto"]
    random_state: int


class ModelSettings(Strict):
    algorithm: Algorithm
    features: tuple[str, ...]
    min_intervals: int = Field(ge=2)
    shards: int = Field(ge=1, le=100_000)  # Spark tasks (and model blobs) the groups are packed into
    max_failed_share: float = Field(ge=0, le=1)  # failed groups above this share fail the training task
    ocsvm: OcsvmSettings
    iforest: IforestSettings

    @field_validator("features")
    @classmethod
    def _known_features(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [f for f in v if f not in FEATURES]
        if unknown or not v:
            raise ValueError(f"features must be a non-empty subset of {', '.join(FEATURES)}")
        return v


class RegistrySettings(Strict):
    model_name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    alias: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class GeneratorSettings(Strict):
    devices: int = Field(ge=1, le=100_000)
    sensors: int = Field(ge=1, le=64)
    step_seconds: int = Field(ge=1, le=3600)
    anomaly_rate: float = Field(ge=0, le=1)
    seed: int
    hours: int = Field(ge=1, le=24 * 31)
    first_hour: dt.datetime

    _step = field_validator("step_seconds")(_divides_an_hour)


class Settings(Strict):
    """The root model of conf/anomaly.yml."""

    tables: TableNames
    blob: BlobPrefixes
    land: LandSettings
    ingest: IngestSettings
    intervals: IntervalSettings
    windows: WindowSettings
    model: ModelSettings
    registry: RegistrySettings
    generator: GeneratorSettings

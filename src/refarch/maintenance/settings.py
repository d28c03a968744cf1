"""The settings of conf/maintenance.yml, typed and checked (errors name the file and the key).

The values live once, in conf/maintenance.yml (with its `targets:` block); these models
hold the types and the limits only. Job parameters that override a setting (`machines`,
`table_prefix`) are declared in `refarch.maintenance.params` with `setting=`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from refarch.maintenance.features import FeatureSpec
from refarch.runtime import Strict
from refarch.runtime.params import TABLE_NAME


class Generator(Strict):
    """How many machines the `generated` dataset makes up, and its random seed."""

    machines: int = Field(ge=1, le=5000)
    seed: int


class Features(Strict):
    """Window lengths and spacing of the feature rows, and how far ahead the label looks (hours)."""

    short_hours: int = Field(ge=1)
    long_hours: int = Field(ge=1)
    error_hours: int = Field(ge=1)
    step_hours: int = Field(ge=1)
    label_horizon_hours: int = Field(ge=1)

    @model_validator(mode="after")
    def _windows_fit_the_step(self) -> Features:
        self.spec()  # windows that are not multiples of the step fail when the conf loads
        return self

    def spec(self) -> FeatureSpec:
        return FeatureSpec(self.short_hours, self.long_hours, self.error_hours, self.step_hours)


class Train(Strict):
    """The classifier and how training copes with the rare failure classes."""

    algorithm: Literal["random_forest", "gbt_ovr"]
    num_trees: int = Field(ge=1, le=1000)  # random_forest
    max_depth: int = Field(ge=1, le=30)
    max_iter: int = Field(ge=1, le=500)  # boosting rounds per class (gbt_ovr)
    negative_fraction: float = Field(gt=0, le=1)  # share of `none` rows kept for training
    class_weight_power: float = Field(ge=0, le=1)  # 1: fully balanced class weights, 0: none
    seed: int


class Settings(Strict):
    """The whole of conf/maintenance.yml for one target."""

    # Raw tables are <prefix>_telemetry, ...; a prefix may name a schema (`plant.pdm`).
    table_prefix: str = Field(pattern=TABLE_NAME.pattern)
    max_bad_share: float = Field(ge=0, le=1)
    model_name: str = Field(pattern=r"^\w+$")
    generator: Generator
    features: Features
    train: Train

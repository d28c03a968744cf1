"""The settings of conf/maintenance.yml, validated (errors name the file and the key)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from refarch.maintenance.features import FeatureSpec
from refarch.maintenance.train import TrainSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratorConf(_Strict):
    machines: int = Field(100, ge=1, le=5000)
    seed: int = 42


class FeaturesConf(_Strict):
    short_hours: int = Field(3, ge=1)
    long_hours: int = Field(24, ge=1)
    error_hours: int = Field(24, ge=1)
    step_hours: int = Field(3, ge=1)
    label_horizon_hours: int = Field(24, ge=1)

    def spec(self) -> FeatureSpec:
        return FeatureSpec(self.short_hours, self.long_hours, self.error_hours, self.step_hours)


class MaintenanceConf(_Strict):
    table_prefix: str = Field("maintenance", pattern=r"^[A-Za-z_]\w*$")
    max_bad_share: float = Field(0.01, ge=0, le=1)
    model_name: str = "maintenance"
    generator: GeneratorConf = Field(default_factory=GeneratorConf)
    features: FeaturesConf = Field(default_factory=FeaturesConf)
    train: TrainSettings = Field(default_factory=TrainSettings)

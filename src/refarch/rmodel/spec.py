"""The train spec: what the R notebook is told to do, written by the prepare task as JSON.

An R notebook cannot read conf/rmodel.yml (its targets, its placeholders such as {checkpoints},
the job parameters that override it): the prepare task resolves them with the Python settings and
writes one JSON file per run, whose path reaches the R notebook as a widget (the task value
`spec`). The R notebook writes its outputs where the spec says, and the evaluate task reads them
from the same spec. `train_info.json` is what R reports back.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from refarch.rmodel.settings import Ranger, Settings, Split

SPEC_FILE = "spec.json"


class TrainSpec(BaseModel):
    """One training run, as the R notebook reads it with jsonlite (keys are R-friendly)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run: str
    folder: str
    model_path: str  # saveRDS(model, model_path)
    test_path: str  # the held-out rows, CSV with a header
    info_path: str  # train_info.json, written by R
    inputs: list[dict[str, Any]]  # the declared columns (conf/rmodel.yml inputs)
    target: str
    split: Split
    ranger: Ranger
    r_packages: list[str]

    @property
    def path(self) -> Path:
        return Path(self.folder) / SPEC_FILE


class TrainInfo(BaseModel):
    """What the R notebook reports about its fit (train_info.json)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: str  # "ggplot2::diamonds" or the CSV path
    rows_train: int = Field(ge=1)
    rows_test: int = Field(ge=1)
    oob_rmse: float
    seconds: float
    r_version: str
    packages: dict[str, str]  # R package -> version the model was fitted with


def new_spec(settings: Settings, now: dt.datetime | None = None) -> TrainSpec:
    """A fresh run folder under `settings.runs` (created) and the spec for it."""
    now = now or dt.datetime.now(dt.timezone.utc)
    run = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    folder = Path(settings.runs) / run
    folder.mkdir(parents=True, exist_ok=False)
    return TrainSpec(
        run=run,
        folder=str(folder),
        model_path=str(folder / "model.rds"),
        test_path=str(folder / "test.csv"),
        info_path=str(folder / "train_info.json"),
        inputs=[c.model_dump() for c in settings.inputs],
        target=settings.target,
        split=settings.split,
        ranger=settings.ranger,
        r_packages=list(settings.r_packages),
    )


def write_spec(spec: TrainSpec) -> Path:
    spec.path.write_text(json.dumps(spec.model_dump(mode="json"), indent=2) + "\n")
    return spec.path


def read_spec(path: str | Path) -> TrainSpec:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no train spec at {path} (the prepare task writes it)")
    return TrainSpec.model_validate_json(path.read_text())


def read_info(spec: TrainSpec) -> TrainInfo:
    path = Path(spec.info_path)
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} in {spec.folder}: did the R train task of run {spec.run} finish?")
    return TrainInfo.model_validate_json(path.read_text())

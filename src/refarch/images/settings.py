"""The image pipeline's settings: the root model of the whole `conf/images.yml` (after its `targets:` block).

No field has a default: each value lives once, in conf/images.yml; job parameters declared with
`setting=` (refarch.images.params) override some of them for one run. Only pydantic is imported
here, so the parameter declarations and the job check read these models without torch or Spark.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from refarch.runtime import Strict
from refarch.runtime.params import TABLE_NAME

MAX_K = 100  # the most classes one answer may hold (the served model's limit too)

TableName = Annotated[str, Field(pattern=TABLE_NAME.pattern)]
ModelName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Depth = Literal[18, 34, 50, 101, 152]
WeightsName = Literal["IMAGENET1K_V1", "IMAGENET1K_V2"]
Colour = Literal["red", "green", "blue", "yellow", "purple", "cyan"]


class Model(Strict):
    """The network registered as `model_name`: torchvision's ResNet-<depth>."""

    depth: Depth
    # torchvision's ResNet<depth>_Weights member: its preprocessing, labels, file and checksum
    weights: WeightsName
    pretrained: bool  # false: random weights (no download), unless a weights file is given
    seed: int = Field(ge=0)  # of the random weights
    top_k: int = Field(ge=1, le=MAX_K)  # classes a request gets when it gives no k
    forward_batch: int = Field(ge=1, le=1024)  # most images in one forward pass

    @model_validator(mode="after")
    def _published(self) -> Model:
        if self.weights == "IMAGENET1K_V2" and self.depth in (18, 34):
            raise ValueError(f"torchvision publishes only IMAGENET1K_V1 weights for ResNet-{self.depth}")
        return self


class Paths(Strict):
    """Folders (local) or volume paths (Databricks)."""

    weights_cache: str  # downloaded ImageNet weights, kept for the next run
    generated: str  # generated images to score and to fine-tune on, when no folder is given
    staging: str  # registered models copied where every Spark worker reads them


class Tables(Strict):
    predictions: TableName  # one row per scored image, partitioned by scoring_date
    quarantine: TableName  # files that are no readable image, with the reason, partitioned by scoring_date


class Scoring(Strict):
    """Batch scoring on Spark."""

    top_k: int = Field(ge=1, le=MAX_K)  # classes kept per image
    batch_size: int = Field(ge=1, le=1024)  # images per forward pass (and per Arrow batch)
    files_per_partition: int = Field(ge=1)  # partitions: this many files each, at least one per core
    threads_per_task: int = Field(ge=1, le=64)  # torch threads of each Python worker (CPU clusters)
    max_bad_share: float = Field(ge=0, lt=1)  # a run fails when more files than this share are quarantined


class Generator(Strict):
    """Generated pictures (refarch.images.generate), for a run without a folder of images."""

    n_images: int = Field(ge=1, le=100_000)
    bad_files: int = Field(ge=0, le=3)  # an empty file, a text file, a truncated JPEG
    seed: int = Field(ge=0)


class LabelledGenerator(Strict):
    """Generated labelled pictures for the fine-tuning notebook, one class per colour."""

    classes: list[Colour] = Field(min_length=2, max_length=6)
    per_class: int = Field(ge=4, le=10_000)
    seed: int = Field(ge=0)


class Finetune(Strict):
    """Transfer learning: the champion's backbone, frozen; a new last layer trained on labelled images."""

    model_name: ModelName
    valid_share: float = Field(gt=0, lt=1)  # of each class, held out to compare with the champion
    epochs: int = Field(ge=1, le=10_000)
    learning_rate: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    seed: int = Field(ge=0)
    generator: LabelledGenerator


class Settings(Strict):
    """conf/images.yml."""

    model_name: ModelName
    model: Model
    paths: Paths
    tables: Tables
    scoring: Scoring
    generator: Generator
    finetune: Finetune

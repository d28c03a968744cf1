"""The FAQ pipeline's settings: the root model of the whole `conf/faq.yml` (after its `targets:` block).

No field has a default: each value lives once, in conf/faq.yml; job parameters declared with
`setting=` (refarch.faq.params) override some of them for one run. Only pydantic is imported
here, so the parameter declarations and the job check read these models without Spark or MLflow.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from refarch.runtime import Strict
from refarch.runtime.params import TABLE_NAME

Dataset = Literal["generated", "stackoverflow"]
DATASETS: tuple[str, ...] = get_args(Dataset)
Cleaning = Literal["strict", "reference"]
MAX_TOP_N = 50  # the most originals one request may ask for (the served model's limit too)

TableName = Annotated[str, Field(pattern=TABLE_NAME.pattern)]
Share = Annotated[float, Field(ge=0, le=1)]


class Tables(Strict):
    """The tables the job writes (and the train task reads)."""

    originals: TableName  # id, answer_id, text, created
    duplicates: TableName  # id, answer_id, original_id, text, created
    preparation: TableName  # rows removed by each preparation step
    quarantine: TableName  # unreadable rows with a reason
    evaluation: TableName  # rank of the true original for each test question


class Grid(Strict):
    """Ranker hyperparameters to try: every combination is one trial; a single value fixes one."""

    C: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)
    word_ngrams: list[Annotated[int, Field(ge=1, le=3)]] = Field(min_length=1)
    char_ngrams: list[bool] = Field(min_length=1)
    min_df: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)
    max_features: list[Annotated[int, Field(ge=1)] | None] = Field(min_length=1)


class CleaningByDataset(Strict):
    """How each dataset's HTML is cleaned (see refarch.faq.text)."""

    generated: Cleaning
    stackoverflow: Cleaning

    def of(self, dataset: str) -> Cleaning:
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, not '{dataset}'")
        cleaning: Cleaning = getattr(self, dataset)
        return cleaning


class Generator(Strict):
    """Generated question families (refarch.datasets.faq_generator.generate_faq_data)."""

    n_families: int = Field(ge=2, le=1_000)
    min_duplicates: int = Field(ge=1)
    max_duplicates: int = Field(ge=1)
    near_miss_share: Share
    typo_rate: Share
    detail_keep: Share
    small_family_share: Share
    malformed_rows: int = Field(ge=0)
    seed: int = Field(ge=0)

    @model_validator(mode="after")
    def _sizes(self) -> Generator:
        if self.min_duplicates > self.max_duplicates:
            raise ValueError("min_duplicates must not exceed max_duplicates")
        return self


class Settings(Strict):
    """conf/faq.yml."""

    tables: Tables
    min_text: int = Field(ge=0, le=10_000)
    min_dupes: int = Field(ge=1, le=1_000)
    max_bad_share: Share
    test_size: float = Field(gt=0, lt=1)
    valid_size: float = Field(gt=0, lt=1)
    seed: int = Field(ge=0)
    top_n: int = Field(ge=1, le=MAX_TOP_N)
    grid: Grid
    cleaning: CleaningByDataset
    generator: Generator

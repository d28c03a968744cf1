"""The FAQ pipeline's settings (`conf/faq.yml`), checked so that a typo names the file and key."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class GeneratorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_families: int = Field(230, ge=2)
    min_duplicates: int = Field(12, ge=1)
    max_duplicates: int = Field(40, ge=1)
    near_miss_share: float = Field(0.5, ge=0, le=1)
    typo_rate: float = Field(0.03, ge=0, le=1)
    detail_keep: float = Field(0.6, ge=0, le=1)
    small_family_share: float = Field(0.1, ge=0, le=1)
    malformed_rows: int = Field(0, ge=0)
    seed: int = 7


class TableNames(BaseModel):
    model_config = ConfigDict(extra="forbid")

    originals: str = "faq_originals"
    duplicates: str = "faq_duplicates"
    preparation: str = "faq_preparation"
    quarantine: str = "faq_quarantine"
    evaluation: str = "faq_evaluation"


class FaqSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tables: TableNames = Field(default_factory=TableNames)

    min_text: int = Field(150, ge=0)
    min_dupes: int = Field(12, ge=1)
    max_bad_share: float = Field(0.05, ge=0, le=1)
    test_size: float = Field(0.21, gt=0, lt=1)
    valid_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    top_n: int = Field(5, ge=1, le=50)
    grid: dict[str, list[Any]] = Field(default_factory=lambda: {"C": [3.0, 10.0, 30.0], "char_ngrams": [True, False]})
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings)
    cleaning: dict[Literal["generated", "stackoverflow"], Literal["strict", "reference"]] = Field(
        default_factory=lambda: {"generated": "strict", "stackoverflow": "reference"}
    )

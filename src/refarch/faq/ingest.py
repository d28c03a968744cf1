"""The first task of the FAQ job: raw files (or generated families) -> quarantine + prepared tables."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from refarch.datasets.faq_generator import generate_faq_data
from refarch.datasets.stackoverflow import RawFaqData, load_stackoverflow
from refarch.faq.prepare import PreparedFaq, prepare_faq
from refarch.faq.settings import DATASETS, Dataset, Settings
from refarch.runtime.quality import QualityReport, quarantine

if TYPE_CHECKING:
    from refarch.runtime.config import Config
    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    raw: RawFaqData
    prepared: PreparedFaq
    quality: QualityReport


def load_raw(
    dataset: Dataset,
    settings: Settings,
    config: Config,
    questions_path: str | None = None,
    duplicates_path: str | None = None,
    answers_path: str | None = None,
) -> RawFaqData:
    """Generated families, or the reference's files (given paths, else the cache, else a download).

    An empty or missing path means "not given": the file comes from the cache or a download.
    """
    if dataset == "generated":
        return generate_faq_data(**settings.generator.model_dump())
    if dataset == "stackoverflow":
        return load_stackoverflow(
            Path(config.target.paths.datasets) / "stackoverflow",
            questions_path=questions_path or None,
            duplicates_path=duplicates_path or None,
            answers_path=answers_path or None,
        )
    raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, not '{dataset}'")


def ingest(tables: Tables, raw: RawFaqData, settings: Settings, dataset: Dataset) -> IngestResult:
    """Quarantine malformed rows (failing past `max_bad_share`), prepare, write the tables.

    The dataset picks the text cleaning (settings.cleaning) and is the quarantine's `source`.
    """
    spark = tables.spark
    names = settings.tables
    good_rows = len(raw.questions) + len(raw.duplicates) + len(raw.answers)
    bad = spark.createDataFrame(raw.malformed.astype(str), schema=_string_schema(raw.malformed.columns))
    report = quarantine(tables, bad, names.quarantine, dataset, good_rows, settings.max_bad_share)
    prepared = prepare_faq(
        raw, min_text=settings.min_text, min_dupes=settings.min_dupes, cleaning=settings.cleaning.of(dataset)
    )
    if prepared.originals.empty:
        raise ValueError(
            f"no original question is left after the filters (min_text={settings.min_text}, "
            f"min_dupes={settings.min_dupes}); see table '{names.preparation}'"
        )
    tables.write(spark.createDataFrame(prepared.originals), names.originals)
    tables.write(spark.createDataFrame(prepared.duplicates), names.duplicates)
    tables.write(spark.createDataFrame(prepared.steps), names.preparation)
    log.info("wrote %d originals and %d duplicates", len(prepared.originals), len(prepared.duplicates))
    return IngestResult(raw, prepared, report)


def _string_schema(columns: pd.Index) -> str:
    return ", ".join(f"`{c}` string" for c in columns)

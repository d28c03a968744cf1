"""Raw files to typed tables; malformed rows go to a quarantine table with their reason.

Values are parsed from strings so a bad row keeps its original text in quarantine
(`volt = "n/a"`, `datetime = "2015-13-45"`) and a person can see what to fix.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from refarch.datasets.maintenance import COMPONENTS, ERROR_TYPES, KINDS, SCHEMAS, SENSORS, read_raw, typed_columns
from refarch.runtime.quality import QualityReport, quarantine, split_by_rules

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

# Physically possible sensor ranges; readings outside are instrument faults, not data.
SENSOR_RANGES = {"volt": (0.0, 1000.0), "rotate": (0.0, 5000.0), "pressure": (0.0, 1000.0), "vibration": (0.0, 500.0)}


@contextlib.contextmanager
def _small_splits(spark: SparkSession, size: str = "16m") -> Iterator[None]:
    key = "spark.sql.files.maxPartitionBytes"
    old = spark.conf.get(key)
    spark.conf.set(key, size)
    try:
        yield
    finally:
        spark.conf.set(key, old)


def table_names(prefix: str) -> dict[str, str]:
    """The table of each raw file: <prefix>_telemetry, <prefix>_errors, ..."""
    return {k: f"{prefix}_{k}" for k in KINDS}


def rules(kind: str) -> dict[str, Column]:
    """Reason -> condition true for a bad row, on `_t_<col>` typed and `<col>` raw columns."""
    from pyspark.sql import functions as F

    def raw(c: str) -> Column:
        return F.trim(F.col(c))

    def typed(c: str) -> Column:
        return F.col(f"_t_{c}")

    out: dict[str, Column] = {}
    for name, type_ in SCHEMAS[kind]:
        missing = raw(name).isNull() | (raw(name) == "")
        out[f"{name} is missing"] = missing
        if type_ == "timestamp":
            out[f"{name} is not a datetime (yyyy-MM-dd HH:mm:ss or M/d/yyyy h:mm:ss AM)"] = typed(name).isNull()
        elif type_ in ("int", "double"):
            out[f"{name} is not a number"] = typed(name).isNull() | F.isnan(typed(name).cast("double"))
    out["machineID is not a positive integer"] = typed("machineID") < 1
    if kind == "telemetry":
        for s in SENSORS:
            lo, hi = SENSOR_RANGES[s]
            out[f"{s} outside [{lo:g}, {hi:g}]"] = (typed(s) < lo) | (typed(s) > hi)
    elif kind == "errors":
        out[f"errorID not one of {', '.join(ERROR_TYPES)}"] = ~typed("errorID").isin(*ERROR_TYPES)
    elif kind == "maint":
        out[f"comp not one of {', '.join(COMPONENTS)}"] = ~typed("comp").isin(*COMPONENTS)
    elif kind == "failures":
        out[f"failure not one of {', '.join(COMPONENTS)}"] = ~typed("failure").isin(*COMPONENTS)
    elif kind == "machines":
        out["age outside [0, 100] years"] = (typed("age") < 0) | (typed("age") > 100)
    return out


def clean(raw: DataFrame, kind: str) -> tuple[DataFrame, DataFrame]:
    """(good typed rows, bad raw rows with `reason`) of one file read by `read_raw`."""
    typed = typed_columns(kind)
    tagged = raw.withColumns({f"_t_{n}": expr for n, expr in typed.items()})
    good, bad = split_by_rules(tagged, rules(kind))
    names = [n for n, _ in SCHEMAS[kind]]
    good = good.select(*[good[f"_t_{n}"].alias(n) for n in names])
    bad = bad.select(*names, "reason")
    return good, bad


def ingest_file(
    spark: SparkSession,
    tables: Tables,
    path: Path | str,
    kind: str,
    table: str,
    quarantine_table: str,
    max_bad_share: float,
) -> QualityReport:
    """Read one raw file, write its good rows to `table` and its bad rows to `quarantine_table`."""
    from pyspark import StorageLevel

    with _small_splits(spark):  # a 60 MB file is one split by default: one core parses it all
        raw = read_raw(spark, path, kind).persist(StorageLevel.MEMORY_AND_DISK)  # parsed once for both outputs
        raw.count()
    try:
        good, bad = clean(raw, kind)
        tables.write(good, table)
        n_good = tables.read(table).count()
        source = f"{kind} ({Path(str(path)).name})"
        return quarantine(tables, bad, quarantine_table, source=source, good_count=n_good, max_bad_share=max_bad_share)
    finally:
        raw.unpersist()


def ingest_all(
    spark: SparkSession,
    tables: Tables,
    files: Mapping[str, Path | str],
    names: Mapping[str, str],
    max_bad_share: float,
) -> list[QualityReport]:
    """Ingest the five files; each table gets a `<table>_quarantine` next to it."""
    missing = [k for k in KINDS if k not in files]
    if missing:
        raise ValueError(f"missing raw file(s): {', '.join(missing)}")
    return [ingest_file(spark, tables, files[k], k, names[k], f"{names[k]}_quarantine", max_bad_share) for k in KINDS]

"""Named tables: Delta in `<catalog>.<schema>` on Databricks, Parquet under the local warehouse.

Pipelines say `tables.write(df, "ratings")` and never build a path or a three-part name.
Overwrites are atomic: a reader sees the old table or the new one, and a failed write
leaves the old one in place. Overwriting partitions replaces only the partitions present
in the new data, so re-running a date range replaces that range and nothing else.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from refarch.runtime.config import Config
from refarch.runtime.params import TableNameError, check_table_name

__all__ = ["TableNameError", "Tables", "check_table_name"]

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

_SCHEMA_FILE = "_refarch_schema.json"


class Tables:
    """Read and write named tables on the current target."""

    def __init__(self, spark: SparkSession, config: Config) -> None:
        self.spark = spark
        self.config = config
        self.delta = config.target.platform == "databricks"
        self.warehouse = Path(config.target.warehouse or config.home / "warehouse")

    # names -------------------------------------------------------------
    def qualified(self, table: str) -> str:
        """`catalog.schema.table` for a bare or partly qualified name."""
        parts = check_table_name(table).split(".")
        t = self.config.target
        defaults = [t.catalog, t.schema_name]
        return ".".join(defaults[: 3 - len(parts)] + parts)

    def path(self, table: str) -> Path:
        """The local folder of a table (local target only)."""
        _, schema, name = self.qualified(table).split(".")
        return self.warehouse / schema / name

    # reads -------------------------------------------------------------
    def exists(self, table: str) -> bool:
        if self.delta:
            return bool(self.spark.catalog.tableExists(self.qualified(table)))
        path = self.path(table)
        return path.is_dir() and (path / _SCHEMA_FILE).is_file()

    def read(self, table: str) -> DataFrame:
        if self.delta:
            return self.spark.read.table(self.qualified(table))
        path = self.path(table)
        if not self.exists(table):
            raise FileNotFoundError(f"table '{table}' does not exist (looked in {path})")
        from pyspark.sql.types import StructType

        schema = StructType.fromJson(json.loads((path / _SCHEMA_FILE).read_text()))
        return self.spark.read.schema(schema).parquet(str(path))

    # writes ------------------------------------------------------------
    def write(self, df: DataFrame, table: str, partition_by: Sequence[str] = ()) -> None:
        """Replace the whole table atomically."""
        if self.delta:
            w = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
            if partition_by:
                w = w.partitionBy(*partition_by)
            w.saveAsTable(self.qualified(table))
            return
        path = self.path(table)
        staging = path.with_name(f".{path.name}.staging-{uuid.uuid4().hex}")
        w = df.write.mode("overwrite")
        if partition_by:
            w = w.partitionBy(*partition_by)
        try:
            w.parquet(str(staging))
            (staging / _SCHEMA_FILE).write_text(df.schema.json())
        except Exception:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _swap_in(staging, path)
        log.info("wrote table %s", table)

    def append(self, df: DataFrame, table: str, partition_by: Sequence[str] = ()) -> None:
        if self.delta:
            w = df.write.format("delta").mode("append")
            if partition_by:
                w = w.partitionBy(*partition_by)
            w.saveAsTable(self.qualified(table))
            return
        path = self.path(table)
        w = df.write.mode("append")
        if partition_by:
            w = w.partitionBy(*partition_by)
        w.parquet(str(path))
        (path / _SCHEMA_FILE).write_text(df.schema.json())

    def overwrite_partitions(self, df: DataFrame, table: str, partition_by: Sequence[str]) -> None:
        """Replace exactly the partitions present in `df`; others stay. Safe to re-run."""
        if not partition_by:
            raise ValueError("overwrite_partitions needs at least one partition column")
        w = df.write.mode("overwrite").option("partitionOverwriteMode", "dynamic").partitionBy(*partition_by)
        if self.delta:  # Delta honours dynamic partition overwrite in one transaction
            w.format("delta").saveAsTable(self.qualified(table))
            return
        path = self.path(table)
        w.parquet(str(path))
        (path / _SCHEMA_FILE).write_text(df.schema.json())
        log.info("replaced partitions of %s", table)

    def drop(self, table: str) -> None:
        if self.delta:
            self.spark.sql(f"DROP TABLE IF EXISTS {self.qualified(table)}")
        else:
            shutil.rmtree(self.path(table), ignore_errors=True)


def _swap_in(staging: Path, path: Path) -> None:
    """Move a finished folder into place; the old one is removed only after the new is in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex}")
    if path.exists():
        path.rename(old)
    staging.rename(path)
    shutil.rmtree(old, ignore_errors=True)

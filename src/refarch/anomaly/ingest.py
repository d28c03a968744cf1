"""Incremental ingest: each run reads exactly the raw files that landed since the last run.

Structured Streaming with an available-now trigger and a checkpoint keeps the list of files
already read. Every micro-batch is parsed, unreadable rows are quarantined with a reason
(and counted per device and sensor in the run log), and the good rows are written by
replacing the batch's own partitions (`date`, `ingest_batch`): a batch replayed after a
crash replaces its earlier output instead of duplicating it.

Columns are taken by position — TS, Device, Sensor, Value — so files whose header says
`Tag` (the reference's CSV) or `Timestamp` are read the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from refarch.anomaly.landing import mirror_new_blobs
from refarch.anomaly.runlog import append_run_log, summary_rows, to_run_log
from refarch.anomaly.settings import Settings
from refarch.runtime.blob import BlobConfigError, BlobLocation
from refarch.runtime.quality import TooManyBadRows, split_by_rules

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)

RAW_SCHEMA = "TS string, Device string, Sensor string, Value string"
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"  # also safe inside blob paths models/<device>/<sensor>/


@dataclass
class IngestReport:
    batches: int = 0
    good: int = 0
    bad: int = 0
    files: int = 0
    seconds: float = 0.0
    bad_by_reason: dict[str, int] = field(default_factory=dict)


def stream_source(settings: Settings, location: BlobLocation) -> tuple[str, dict[str, str], str]:
    """(format, options, path) of the raw readings stream for the configured ingest mode.

    autoloader: the landed folder as Spark reads it through the Unity Catalog external location,
    `abfss://<container>@<account>.dfs.core.windows.net/<blob.prefix><raw_prefix>`.
    """
    csv = {"header": "true", "mode": "PERMISSIVE"}
    if settings.ingest.mode == "mirror":
        return "csv", {**csv, "recursiveFileLookup": "true", "pathGlobFilter": "*.csv"}, settings.ingest.landing_dir
    try:
        url = location.abfss_url(settings.blob.raw_prefix)
    except BlobConfigError as err:
        raise ValueError(f"ingest.mode autoloader: {err}") from None
    return "cloudFiles", {**csv, "cloudFiles.format": "csv", "pathGlobFilter": "*.csv"}, url


def parse_readings(raw: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Typed good rows (TS, Device, Sensor, Value, date, source_file) and bad rows with a reason.

    `raw` has the four text columns and `source_file` (the file each row came from).
    """
    from pyspark.sql import functions as F

    typed = raw.select(
        F.col("TS").alias("ts_text"),
        F.trim("Device").alias("Device"),
        F.trim("Sensor").alias("Sensor"),
        F.col("Value").alias("value_text"),
        F.expr("try_cast(TS AS timestamp)").alias("TS"),  # SQL try_cast: also on Spark 3.5 runtimes
        F.expr("try_cast(Value AS double)").alias("Value"),
        F.col("source_file"),
    )
    good, bad = split_by_rules(
        typed,
        {
            "bad_device": F.col("Device").isNull() | ~F.col("Device").rlike(ID_PATTERN),
            "bad_sensor": F.col("Sensor").isNull() | ~F.col("Sensor").rlike(ID_PATTERN),
            "bad_timestamp": F.col("TS").isNull(),
            "bad_value": F.col("Value").isNull() | F.isnan("Value") | F.col("Value").isin(float("inf"), float("-inf")),
        },
    )
    good = good.select("TS", "Device", "Sensor", "Value", F.to_date("TS").alias("date"), "source_file")
    bad = bad.select(
        F.col("ts_text").alias("TS"),
        "Device",
        "Sensor",
        F.col("value_text").alias("Value"),
        "source_file",
        "reason",
    )
    return good, bad


class _BatchWriter:
    """foreachBatch body: parse, enforce the bad-row limit, write readings, quarantine, run log."""

    def __init__(self, tables: Tables, settings: Settings, run_id: str) -> None:
        self.tables, self.settings, self.run_id = tables, settings, run_id
        self.report = IngestReport()

    def __call__(self, raw: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        started = time.perf_counter()
        t = self.settings.tables
        raw = raw.cache()  # read the batch's files once for counts and both writes
        good, bad = parse_readings(raw)
        good = good.withColumn("ingest_batch", F.lit(int(batch_id)))
        bad = bad.withColumn("ingest_batch", F.lit(int(batch_id))).withColumn("quarantined_at", F.current_timestamp())
        # one pass for all counts: rows per reason (null = good) and the files they came from
        stats = (
            good.select(F.lit(None).cast("string").alias("reason"), "source_file")
            .unionByName(bad.select("reason", "source_file"))
            .groupBy("reason")
            .agg(F.count("*").alias("n"), F.collect_set("source_file").alias("files"))
            .collect()
        )
        n_good = sum(int(r["n"]) for r in stats if r["reason"] is None)
        n_bad = sum(int(r["n"]) for r in stats if r["reason"] is not None)
        files = len({f for r in stats for f in r["files"]})
        try:
            # quarantine first: rows are kept even when the batch then fails on the limit
            if n_bad:
                self.tables.overwrite_partitions(bad, t.quarantine, ["ingest_batch"])
            total = n_good + n_bad
            if total and n_bad / total > self.settings.ingest.max_bad_share:
                raise TooManyBadRows(
                    f"ingest batch {batch_id}: {n_bad} of {total} rows ({n_bad / total:.1%}) are unreadable, "
                    f"above the limit of {self.settings.ingest.max_bad_share:.1%}; see table '{t.quarantine}'"
                )
            if n_good:
                self.tables.overwrite_partitions(good, t.readings, ["date", "ingest_batch"])
            if n_bad:
                append_run_log(self.tables, t.run_log, to_run_log(_bad_per_group(bad), self.run_id, "ingest"))
        finally:
            raw.unpersist()
        for r in stats:
            if r["reason"] is not None:
                self.report.bad_by_reason[r["reason"]] = self.report.bad_by_reason.get(r["reason"], 0) + int(r["n"])
        r = self.report
        r.batches += 1
        r.good += n_good
        r.bad += n_bad
        r.files += files
        r.seconds += time.perf_counter() - started
        log.info("ingest batch %d: %d files, %d readings, %d quarantined", batch_id, files, n_good, n_bad)


def _bad_per_group(bad: DataFrame) -> DataFrame:
    """Run-log rows: how many unreadable readings each (device, sensor) sent, and why."""
    from pyspark.sql import functions as F

    per_group = bad.groupBy(F.col("Device").alias("device"), F.col("Sensor").alias("sensor")).agg(
        F.count("*").alias("rows"),
        F.concat_ws(",", F.array_sort(F.collect_set("reason"))).alias("reasons"),
    )
    return per_group.select(
        "device",
        "sensor",
        F.lit("bad_readings").alias("status"),
        "rows",
        F.lit(0.0).alias("seconds"),
        F.lit(None).cast("string").alias("model_version"),
        F.concat(F.lit("unreadable readings quarantined: "), F.col("reasons")).alias("message"),
    )


def ingest_readings(
    tables: Tables,
    settings: Settings,
    location: BlobLocation,
    run_id: str,
    timeout_seconds: float = 3600,
) -> IngestReport:
    """Read every raw file not read before (available-now trigger) into the readings table.

    In mirror mode the blobs landed since the last run are first copied into the landing folder.
    """
    spark = tables.spark
    fmt, options, path = stream_source(settings, location)
    if settings.ingest.mode == "mirror":
        mirror_new_blobs(location.container_client(), settings.blob.raw_prefix, Path(path))
    checkpoint = f"{settings.ingest.checkpoint_dir.rstrip('/')}/readings"
    writer = _BatchWriter(tables, settings, run_id)
    started = time.perf_counter()
    from pyspark.sql import functions as F

    stream = (
        spark.readStream.format(fmt)
        .options(**options)
        .schema(RAW_SCHEMA)
        .load(path)
        .withColumn("source_file", F.col("_metadata.file_path"))
    )
    query = (
        stream.writeStream.foreachBatch(writer)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .queryName(f"anomaly_ingest_{run_id.replace('-', '_')}")
        .start()
    )
    try:
        finished = query.awaitTermination(timeout_seconds)
    except Exception as err:  # StreamingQueryException wraps the batch's own error
        cause = _root_message(err)
        raise RuntimeError(f"ingest failed: {cause}") from None
    if not finished:
        query.stop()
        raise TimeoutError(f"ingest did not finish within {timeout_seconds:.0f} s")
    report = writer.report
    report.seconds = time.perf_counter() - started
    append_run_log(
        tables,
        settings.tables.run_log,
        summary_rows(
            spark,
            run_id,
            "ingest",
            [
                {
                    "status": "ok",
                    "rows": report.good,
                    "seconds": report.seconds,
                    "message": f"{report.files} file(s), {report.batches} batch(es), {report.bad} quarantined",
                }
            ],
        ),
    )
    return report


def _root_message(err: BaseException) -> str:
    text = str(getattr(err, "desc", None) or err)
    for marker in ("TooManyBadRows: ", "Exception: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip().splitlines()[0] if text.strip() else repr(err)

"""The Spark session: the cluster's on Databricks, a small local one elsewhere.

One session per process: notebooks, the job runner and the tests all share it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from refarch.runtime.config import Config, load_config
from refarch.runtime.workspace import on_databricks

__all__ = ["get_spark", "on_databricks"]

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def get_spark(config: Config | None = None) -> SparkSession:
    """Return the active session, or start a local one tuned for a small machine."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if on_databricks():
        return SparkSession.builder.getOrCreate()
    config = config or load_config()
    conf = config.target.spark
    warehouse = config.target.warehouse or str(config.home / "warehouse")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(conf.master)
        .appName("refarch")
        .config("spark.driver.memory", conf.driver_memory)
        .config("spark.sql.shuffle.partitions", str(conf.shuffle_partitions))
        .config("spark.default.parallelism", str(conf.shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", str(config.home / "spark-warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={config.home}")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.local.dir", str(config.home / "spark-tmp"))
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
    )
    for key, value in conf.extra.items():
        builder = builder.config(key, value)
    log.info("starting local Spark %s (warehouse %s)", conf.master, warehouse)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark

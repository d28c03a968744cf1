import subprocess
import sys
from pathlib import Path

import pytest

from refarch.runtime.quality import TooManyBadRows, quarantine, split_by_rules
from refarch.runtime.tables import TableNameError, check_table_name


def test_write_read_roundtrip_keeps_types(spark, tables):
    df = spark.createDataFrame([(1, "2024-01-01", 2.5), (2, "2024-01-02", 3.0)], "id int, day string, v double")
    tables.write(df, "roundtrip", partition_by=["day"])
    back = tables.read("roundtrip")
    assert dict(back.dtypes) == {"id": "int", "day": "string", "v": "double"}
    assert sorted(tuple(r) for r in back.select("id", "day", "v").collect()) == [
        (1, "2024-01-01", 2.5),
        (2, "2024-01-02", 3.0),
    ]


def test_overwrite_replaces_whole_table(spark, tables):
    tables.write(spark.createDataFrame([(1,), (2,)], "x int"), "replaced")
    tables.write(spark.createDataFrame([(3,)], "x int"), "replaced")
    assert [r.x for r in tables.read("replaced").collect()] == [3]


def test_overwrite_from_itself_is_safe(spark, tables):
    from pyspark.sql import functions as F

    tables.write(spark.createDataFrame([(1,), (2,)], "x int"), "selfish")
    tables.write(tables.read("selfish").withColumn("x", F.col("x") * 10), "selfish")
    assert sorted(r.x for r in tables.read("selfish").collect()) == [10, 20]


def test_failed_write_keeps_old_table(spark, tables):
    from pyspark.sql import functions as F

    tables.write(spark.createDataFrame([(1,)], "x int"), "kept")
    boom = spark.createDataFrame([(0,)], "x int").select(F.raise_error(F.lit("boom")).cast("int").alias("x"))
    with pytest.raises(Exception, match="boom"):
        tables.write(boom, "kept")
    assert [r.x for r in tables.read("kept").collect()] == [1]


def test_overwrite_partitions_replaces_only_given_range(spark, tables):
    first = spark.createDataFrame([("d1", 1), ("d2", 2), ("d3", 3)], "day string, v int")
    tables.overwrite_partitions(first, "scores", ["day"])
    rerun = spark.createDataFrame([("d2", 20), ("d2", 21)], "day string, v int")
    tables.overwrite_partitions(rerun, "scores", ["day"])
    tables.overwrite_partitions(rerun, "scores", ["day"])  # a re-run is idempotent
    got = sorted((r.day, r.v) for r in tables.read("scores").collect())
    assert got == [("d1", 1), ("d2", 20), ("d2", 21), ("d3", 3)]


def test_tables_persist_across_processes(spark, tables, refarch_home):
    tables.write(spark.createDataFrame([(7,)], "x int"), "shared")
    path = tables.path("shared")
    code = "import pyarrow.parquet as pq, sys; print(pq.read_table(sys.argv[1]).column('x').to_pylist())"
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[7]"
    assert Path(path).is_relative_to(refarch_home)


def test_names_are_checked_before_spark(tables):
    assert tables.qualified("ratings") == "main.refarch.ratings"
    assert tables.qualified("other.ratings") == "main.other.ratings"
    with pytest.raises(TableNameError, match="parameter 'output_table'"):
        check_table_name("results; drop", "output_table")
    with pytest.raises(FileNotFoundError, match="table 'nope' does not exist"):
        tables.read("nope")


def test_quarantine_keeps_bad_rows_with_reason(spark, tables):
    from pyspark.sql import functions as F

    raw = spark.createDataFrame(
        [("1", "10", "4.0"), ("x", "11", "3.0"), ("2", "12", "9.0"), ("3", None, "1.0"), ("4", "13", "2.0")],
        "user string, item string, rating string",
    )
    rules = {
        "missing field": F.col("item").isNull() | F.col("user").isNull(),
        "non-numeric id": F.col("user").try_cast("int").isNull(),
        "rating out of range": ~F.col("rating").try_cast("double").between(1, 5),
    }
    good, bad = split_by_rules(raw, rules)
    assert sorted(r.user for r in good.collect()) == ["1", "4"]
    report = quarantine(tables, bad, "ratings_quarantine", "test.csv", good_count=2, max_bad_share=0.9)
    assert (report.good, report.bad) == (2, 3)
    reasons = {r.user: r.reason for r in tables.read("ratings_quarantine").collect()}
    assert reasons == {"x": "non-numeric id", "2": "rating out of range", "3": "missing field"}
    with pytest.raises(TooManyBadRows, match="3 of 5 rows"):
        quarantine(tables, bad, "ratings_quarantine", "test.csv", good_count=2, max_bad_share=0.5)

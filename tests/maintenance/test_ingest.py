"""Raw files to tables: good rows typed, bad rows quarantined with a reason, nothing dropped."""

from __future__ import annotations

import datetime as dt

import pytest

from refarch.maintenance.ingest import clean, ingest_file
from refarch.runtime.quality import TooManyBadRows

TELEMETRY = """\
"datetime","machineID","volt","rotate","pressure","vibration"
2015-01-01 06:00:00,1,176.2,418.5,113.1,45.1
1/1/2015 7:00:00 AM,1,162.9,402.7,95.5,43.4
2015-13-45 06:00:00,1,170.0,400.0,100.0,40.0
2015-01-01 09:00:00,1,n/a,400.0,100.0,40.0
2015-01-01 10:00:00,-3,170.0,400.0,100.0,40.0
2015-01-01 11:00:00,1,-5.0,400.0,100.0,40.0
,1,170.0,400.0,100.0,40.0
"""


def test_bad_rows_are_quarantined_with_reasons(spark, tables, tmp_path):
    path = tmp_path / "telemetry.csv"
    path.write_text(TELEMETRY)
    with pytest.raises(TooManyBadRows, match="5 of 7 rows"):
        ingest_file(spark, tables, path, "telemetry", "t_telemetry", "t_telemetry_quarantine", max_bad_share=0.5)
    good = tables.read("t_telemetry").orderBy("datetime").collect()
    assert [(r.datetime, r.machineID, r.volt) for r in good] == [
        (dt.datetime(2015, 1, 1, 6), 1, 176.2),
        (dt.datetime(2015, 1, 1, 7), 1, 162.9),
    ]
    bad = {r.datetime: (r.reason, r.volt) for r in tables.read("t_telemetry_quarantine").collect()}
    assert bad["2015-13-45 06:00:00"][0].startswith("datetime is not a datetime")
    assert bad["2015-01-01 09:00:00"] == ("volt is not a number", "n/a")
    assert bad["2015-01-01 10:00:00"][0] == "machineID is not a positive integer"
    assert bad["2015-01-01 11:00:00"][0] == "volt outside [0, 1000]"
    assert bad[None][0] == "datetime is missing"
    assert {r.source for r in tables.read("t_telemetry_quarantine").collect()} == {"telemetry (telemetry.csv)"}


def test_within_the_limit_the_ingest_passes(spark, tables, tmp_path):
    path = tmp_path / "errors.csv"
    path.write_text(
        "datetime,machineID,errorID\n2015-01-03 07:00:00,1,error1\n2015-01-03 20:00:00,1,error3\n"
        "2015-01-04 06:00:00,1,error9\n"
    )
    report = ingest_file(spark, tables, path, "errors", "t_errors", "t_errors_quarantine", max_bad_share=0.5)
    assert (report.good, report.bad) == (2, 1)
    (bad,) = tables.read("t_errors_quarantine").collect()
    assert bad.errorID == "error9" and bad.reason.startswith("errorID not one of error1")


def test_each_kind_has_its_rules(spark):
    rows = [("1", "model3", "18"), ("2", "model1", "250"), ("x", "model2", "3"), ("4", "", "3")]
    good, bad = clean(spark.createDataFrame(rows, "machineID string, model string, age string"), "machines")
    assert [tuple(r) for r in good.collect()] == [(1, "model3", 18)]
    assert sorted(r.reason for r in bad.collect()) == [
        "age outside [0, 100] years",
        "machineID is not a number",
        "model is missing",
    ]
    maint = spark.createDataFrame(
        [("2014-06-01 06:00:00", "1", "comp5")], "datetime string, machineID string, comp string"
    )
    _, bad = clean(maint, "maint")
    assert bad.first().reason == "comp not one of comp1, comp2, comp3, comp4"

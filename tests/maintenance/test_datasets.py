"""The maintenance dataset module: generator statistics, both file formats, local and cached files."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from refarch.datasets import maintenance as pdm
from refarch.datasets.download import DownloadError, RemoteFile


@pytest.fixture(scope="module")
def year() -> dict[str, pd.DataFrame]:
    """40 machines over 2015: enough for stable statistics, under a second to make."""
    return pdm.generate(40, dt.date(2015, 1, 1), dt.date(2016, 1, 1), seed=3)


def test_telemetry_statistics_match_the_public_data(year):
    tel = year["telemetry"]
    assert len(tel) == 40 * 365 * 24
    for sensor, (mean, std) in {
        "volt": (171, 15),
        "rotate": (447, 53),
        "pressure": (101, 11),
        "vibration": (40, 5),
    }.items():
        assert tel[sensor].mean() == pytest.approx(mean, rel=0.02), sensor
        assert tel[sensor].std() == pytest.approx(std, rel=0.1), sensor


def test_failures_per_machine_year_and_replacements(year):
    failures, maint = year["failures"], year["maint"]
    assert 6.5 <= len(failures) / 40 <= 8.5
    assert set(failures["failure"]) == set(pdm.COMPONENTS)
    assert set(year["errors"]["errorID"]) == set(pdm.ERROR_TYPES)
    # every failure is also a replacement; scheduled replacements come on top
    keys = set(map(tuple, maint[["datetime", "machineID", "comp"]].to_numpy()))
    assert all((r.datetime, r.machineID, r.failure) in keys for r in failures.itertuples())
    assert len(maint[maint["datetime"] >= pd.Timestamp("2015-01-01")]) > 1.5 * len(failures)
    # maintenance history reaches back a year before the telemetry, as in the public data
    assert maint["datetime"].min() < pd.Timestamp("2014-02-01")
    assert failures["datetime"].min() >= pd.Timestamp("2015-01-01")


def test_precursors_raise_the_components_signature_before_failures(year):
    """Readings in the day before a comp1 failure have higher voltage than usual, on average."""
    tel = year["telemetry"].set_index(["machineID", "datetime"])
    before = []
    for r in year["failures"][year["failures"]["failure"] == "comp1"].itertuples():
        window = pd.date_range(r.datetime - pd.Timedelta(hours=20), r.datetime - pd.Timedelta(hours=1), freq="h")
        idx = [(r.machineID, t) for t in window if (r.machineID, t) in tel.index]
        before.append(tel.loc[idx, "volt"].mean())
    lift = (pd.Series(before).mean() - tel["volt"].mean()) / tel["volt"].std()
    assert 0.8 < lift < 3.0  # clearly there, yet within the noise of single readings


def test_generator_is_reproducible_and_checks_its_arguments():
    a = pdm.generate(2, dt.date(2015, 1, 1), dt.date(2015, 1, 15), seed=9)
    b = pdm.generate(2, dt.date(2015, 1, 1), dt.date(2015, 1, 15), seed=9)
    pd.testing.assert_frame_equal(a["telemetry"], b["telemetry"])
    with pytest.raises(ValueError, match="n_machines"):
        pdm.generate(0, dt.date(2015, 1, 1), dt.date(2015, 1, 2), seed=1)
    with pytest.raises(ValueError, match="after start"):
        pdm.generate(1, dt.date(2015, 2, 1), dt.date(2015, 1, 1), seed=1)


def test_both_public_formats_read_to_the_same_values(spark, tmp_path):
    frames = pdm.generate(2, dt.date(2015, 1, 1), dt.date(2015, 1, 3), seed=1)
    iso = pdm.write_csv(frames, tmp_path / "iso", style="iso")
    us = pdm.write_csv(frames, tmp_path / "us", style="us")
    assert iso["telemetry"].name == "PdM_telemetry.csv" and us["telemetry"].name == "telemetry.csv"
    first_us = us["errors"].read_text().splitlines()
    assert first_us[0] == '"datetime","machineID","errorID"'
    assert us["telemetry"].read_text().splitlines()[1].startswith("1/1/2015 6:00:00 AM,1,")
    for kind in pdm.KINDS:
        rows = []
        for path in (iso[kind], us[kind]):
            raw = pdm.read_raw(spark, path, kind)
            typed = raw.select(*[e.alias(n) for n, e in pdm.typed_columns(kind).items()])
            rows.append(sorted(tuple(r) for r in typed.collect()))
        assert rows[0] == rows[1], kind
    tel = pdm.read_raw(spark, us["telemetry"], "telemetry")
    first = tel.select(pdm.typed_columns("telemetry")["datetime"].alias("t")).orderBy("t").first().t
    assert first == dt.datetime(2015, 1, 1, 6, 0)


def test_pm_afternoon_hours_parse(spark, tmp_path):
    path = tmp_path / "failures.csv"
    path.write_text('"datetime","machineID","failure"\n12/31/2015 1:00:00 PM,7,comp2\n1/2/2015 12:00:00 AM,7,comp1\n')
    df = pdm.read_raw(spark, path, "failures").select(pdm.typed_columns("failures")["datetime"].alias("t"))
    assert sorted(r.t for r in df.collect()) == [dt.datetime(2015, 1, 2, 0, 0), dt.datetime(2015, 12, 31, 13, 0)]


def test_read_raw_names_missing_columns(spark, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("datetime,machineID\n2015-01-01 06:00:00,1\n")
    with pytest.raises(ValueError, match="missing columns errorID"):
        pdm.read_raw(spark, path, "errors")


def test_sources_keep_urls_of_both_versions():
    assert pdm.SOURCES["pdm100"]["telemetry"].url.endswith("/datasets/PdM_telemetry.csv")
    assert pdm.SOURCES["pdm1000"]["failures"].url.endswith("PredictiveMaintanenceModelingGuide/Data/failures.csv")
    assert set(pdm.SOURCES["pdm1000"]) == set(pdm.KINDS)


def test_fetch_files_takes_the_users_folder(tmp_path):
    folder = tmp_path / "mine"
    pdm.write_csv(pdm.generate(1, dt.date(2015, 1, 1), dt.date(2015, 1, 2), seed=1), folder, style="us")
    files = pdm.fetch_files("pdm1000", tmp_path / "cache", local_dir=folder)
    assert files["telemetry"] == folder / "telemetry.csv"
    (folder / "errors.csv").unlink()
    with pytest.raises(DownloadError, match="no errors file"):
        pdm.fetch_files("pdm1000", tmp_path / "cache", local_dir=folder)
    with pytest.raises(ValueError, match="unknown maintenance dataset"):
        pdm.fetch_files("pdm42", tmp_path / "cache")


def test_fetch_files_downloads_once_into_the_cache_and_checks_the_checksum(tmp_path, monkeypatch):
    """The download path for real, from file:// URLs: first call fetches, second uses the cache."""
    published = tmp_path / "published"
    paths = pdm.write_csv(pdm.generate(1, dt.date(2015, 1, 1), dt.date(2015, 1, 2), seed=1), published)
    digest = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in paths.items()}
    monkeypatch.setitem(pdm.SOURCES, "pdm100", {k: RemoteFile(p.as_uri(), sha256=digest[k]) for k, p in paths.items()})
    cache = tmp_path / "cache"
    files = pdm.fetch_files("pdm100", cache)
    assert files["machines"] == cache / "maintenance" / "pdm100" / "PdM_machines.csv"
    assert files["machines"].read_bytes() == paths["machines"].read_bytes()
    paths["machines"].unlink()  # the second call must not need the source any more
    assert pdm.fetch_files("pdm100", cache)["machines"].is_file()
    monkeypatch.setitem(
        pdm.SOURCES, "pdm100", {**pdm.SOURCES["pdm100"], "errors": RemoteFile(paths["errors"].as_uri(), "0" * 64)}
    )
    (cache / "maintenance" / "pdm100" / "PdM_errors.csv").unlink()
    with pytest.raises(DownloadError, match="does not match"):
        pdm.fetch_files("pdm100", cache)
    assert not (cache / "maintenance" / "pdm100" / "PdM_errors.csv").exists()


def test_write_csv_round_trips_through_pandas(tmp_path: Path):
    frames = pdm.generate(1, dt.date(2015, 1, 1), dt.date(2015, 1, 2), seed=1)
    paths = pdm.write_csv(frames, tmp_path)
    back = pd.read_csv(paths["machines"])
    assert back.to_dict("records") == frames["machines"].to_dict("records")

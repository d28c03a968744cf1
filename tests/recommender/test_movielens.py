"""MovieLens loader on small zips made here, one per published layout."""

from __future__ import annotations

import zipfile

import pytest

from refarch.datasets.download import DownloadError
from refarch.datasets.movielens import SIZES, movielens_size, read_movielens

LINES = {
    "100k": ("ml-100k/u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"),
    "1m": ("ml-1m/ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::x::4::978301968\n"),
    "10m": ("ml-10M100K/ratings.dat", "1::122::5::838985046\n1::185::4.5::838983525\n"),
    "20m": ("ml-20m/ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n"),
}


def _zip(tmp_path, size):
    inner, text = LINES[size]
    path = tmp_path / f"ml-{size}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(inner, text)
    return path


def _rows(df):
    return [tuple(r[c] for c in ("user_id", "item_id", "rating", "timestamp")) for r in df.collect()]


def test_sizes_and_names():
    assert movielens_size("movielens-100k") is SIZES["100k"]
    assert movielens_size("ML-20M").separator == ","
    assert SIZES["1m"].separator == "::" and not SIZES["1m"].header
    assert SIZES["100k"].remote.url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert (SIZES["100k"].rating_min, SIZES["20m"].rating_min, SIZES["10m"].rating_max) == (1.0, 0.5, 5.0)
    with pytest.raises(ValueError, match="unknown MovieLens size '5k'"):
        movielens_size("5k")


@pytest.mark.parametrize("size", ["100k", "1m", "20m"])
def test_each_layout_from_a_users_zip(spark, tmp_path, size):
    df = read_movielens(spark, size, tmp_path / "cache", local_path=_zip(tmp_path, size), verify_checksum=False)
    rows = _rows(df)
    first = {"100k": ("196", "242", "3", "881250949"), "1m": ("1", "1193", "5", "978300760")}
    first["20m"] = ("1", "2", "3.5", "1112486027")  # the header line is gone
    assert rows[0] == first[size]
    assert len(rows) == len(LINES[size][1].splitlines()) - SIZES[size].header
    if size == "1m":
        assert rows[2] == ("2", "x", "4", "978301968")  # kept as text: ingest quarantines it


def test_from_the_cache_and_from_an_extracted_folder(spark, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    _zip(cache, "10m")  # ml-10m.zip in the cache: unpinned checksum, no download needed
    assert _rows(read_movielens(spark, "10m", cache))[1] == ("1", "185", "4.5", "838983525")
    folder = tmp_path / "mine"
    (folder / "ml-100k").mkdir(parents=True)
    (folder / "ml-100k" / "u.data").write_text("5\t6\t2\t100\n7\t8\n")
    df = read_movielens(spark, "100k", tmp_path / "unused", local_path=folder)
    assert _rows(df) == [("5", "6", "2", "100"), ("7", "8", None, None)]


def test_a_wrong_zip_fails_its_checksum(tmp_path):
    from refarch.datasets.movielens import ratings_path

    with pytest.raises(DownloadError, match="does not match"):
        ratings_path("100k", tmp_path / "cache", local_path=_zip(tmp_path, "100k"))
    with pytest.raises(DownloadError, match="no such file"):
        ratings_path("1m", tmp_path / "cache", local_path=tmp_path / "nope.zip")

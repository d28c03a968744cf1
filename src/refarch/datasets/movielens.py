"""MovieLens ratings (GroupLens): 100k, 1m, 10m and 20m, each with its own file layout.

The zip is fetched once (URL + SHA-256 + cache folder) or taken from the user: a zip, the
extracted folder, or the ratings file itself. Rows come back as strings under the canonical
names (user_id, item_id, rating, timestamp) so that malformed lines reach the ingest rules
and the quarantine table instead of vanishing in a typed CSV read.
"""

from __future__ import annotations

import logging
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from refarch.datasets.download import DownloadError, RemoteFile, fetch

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

BASE_URL = "https://files.grouplens.org/datasets/movielens"
COLUMNS = ("user_id", "item_id", "rating", "timestamp")


@dataclass(frozen=True)
class MovieLensSize:
    """One published size: where its zip lives and how its ratings file is written."""

    name: str
    remote: RemoteFile
    ratings_file: str  # path inside the zip
    separator: str
    header: bool
    n_ratings: int
    rating_min: float = 1.0  # 10m and 20m have half stars from 0.5
    rating_max: float = 5.0


# SHA-256 of 100k, 1m and 20m as pinned by tensorflow/datasets (url_checksums/movielens.txt).
# No published SHA-256 is known to us for ml-10m.zip: it stays unpinned (None) rather than invented.
SIZES: dict[str, MovieLensSize] = {
    "100k": MovieLensSize(
        "100k",
        RemoteFile(f"{BASE_URL}/ml-100k.zip", "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"),
        "ml-100k/u.data",
        "\t",
        False,
        100_000,
    ),
    "1m": MovieLensSize(
        "1m",
        RemoteFile(f"{BASE_URL}/ml-1m.zip", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"),
        "ml-1m/ratings.dat",
        "::",
        False,
        1_000_209,
    ),
    "10m": MovieLensSize(
        "10m",
        RemoteFile(f"{BASE_URL}/ml-10m.zip", None),
        "ml-10M100K/ratings.dat",
        "::",
        False,
        10_000_054,
        0.5,
    ),
    "20m": MovieLensSize(
        "20m",
        RemoteFile(f"{BASE_URL}/ml-20m.zip", "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"),
        "ml-20m/ratings.csv",
        ",",
        True,
        20_000_263,
        0.5,
    ),
}


def movielens_size(name: str) -> MovieLensSize:
    """Accept '100k', 'ml-100k' or 'movielens-100k' (any case)."""
    key = name.lower().removeprefix("movielens-").removeprefix("movielens").removeprefix("ml-").strip("-_")
    if key not in SIZES:
        raise ValueError(f"unknown MovieLens size '{name}' (known: {', '.join(SIZES)})")
    return SIZES[key]


def ratings_path(
    size: str, cache_dir: Path, local_path: Path | str | None = None, verify_checksum: bool = True
) -> Path:
    """The extracted ratings file of `size`: from the user's zip/folder/file, the cache, or a download.

    `verify_checksum=False` accepts a zip that is not the published one (a re-packed or
    trimmed copy); leave it on for the figures to mean what they say.
    """
    spec = movielens_size(size)
    inner = Path(spec.ratings_file)
    if local_path:
        given = Path(local_path).expanduser()
        if given.is_dir():
            return _find_in_folder(given, inner)
        if given.is_file() and not zipfile.is_zipfile(given):
            return given  # the ratings file itself
    remote = spec.remote if verify_checksum else RemoteFile(spec.remote.url, None)
    archive = fetch(remote, cache_dir, local_path)
    return _extract(archive, inner, cache_dir / inner.parent.name)


def _find_in_folder(folder: Path, inner: Path) -> Path:
    for candidate in (folder / inner, folder / inner.name):
        if candidate.is_file():
            return candidate
    raise DownloadError(f"{folder}: no {inner.name} in it or in {inner.parent}/ below it")


def _extract(archive: Path, inner: Path, out_dir: Path) -> Path:
    target = out_dir / inner.name
    if target.is_file() and target.stat().st_mtime >= archive.stat().st_mtime:
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        member = inner.as_posix() if inner.as_posix() in names else None
        if member is None:  # tolerate a re-zipped folder with another top-level name
            member = next((n for n in names if n.endswith("/" + inner.name) or n == inner.name), None)
        if member is None:
            raise DownloadError(f"{archive}: no {inner} inside (is this the right MovieLens size?)")
        part = target.with_suffix(target.suffix + ".part")
        with zf.open(member) as src, part.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        part.replace(target)
    log.info("extracted %s from %s", inner, archive)
    return target


def read_movielens(
    spark: SparkSession,
    size: str,
    cache_dir: Path,
    local_path: Path | str | None = None,
    verify_checksum: bool = True,
) -> DataFrame:
    """Ratings of one MovieLens size as strings: user_id, item_id, rating, timestamp.

    Lines with too few fields come back with nulls (they are quarantined by ingest);
    lines with too many keep their first four fields and are flagged by `_extra`.
    """
    from pyspark.sql import functions as F

    spec = movielens_size(size)
    path = ratings_path(size, cache_dir, local_path, verify_checksum)
    lines = spark.read.text(str(path))
    if spec.header:
        first = lines.first()
        header = first[0] if first is not None else None
        lines = lines.filter(F.col("value") != F.lit(header)) if header is not None else lines
    fields = F.split(F.col("value"), _regex(spec.separator))
    df = lines.select(
        *[F.get(fields, i).alias(name) for i, name in enumerate(COLUMNS)],  # null when missing
        (F.size(fields) > len(COLUMNS)).alias("_extra"),
        F.col("value").alias("_line"),
    )
    log.info("MovieLens %s from %s", spec.name, path)
    return df


def _regex(separator: str) -> str:
    import re

    return re.escape(separator)

"""Fetch a public file once: URL, SHA-256 checksum, cache folder; or take the user's own copy.

Machines without internet still work when the file is already in the cache or given
as a path, and a corrupted or truncated file is caught by its checksum, not by a
confusing parse error three steps later.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """The file could not be fetched or does not match its checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """A public file: where it lives and what its bytes must hash to (None: not pinned)."""

    url: str
    sha256: str | None = None
    filename: str | None = None

    @property
    def name(self) -> str:
        return self.filename or self.url.rstrip("/").rsplit("/", 1)[-1]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, sha256: str | None) -> Path:
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256.lower():
            raise DownloadError(f"{path}: SHA-256 {actual} does not match the expected {sha256}")
    return path


def fetch(remote: RemoteFile, cache_dir: Path, local_path: Path | str | None = None, timeout: float = 60) -> Path:
    """Return a verified local copy: the user's file, else the cache, else a fresh download."""
    if local_path:
        path = Path(local_path).expanduser()
        if not path.exists():
            raise DownloadError(f"{path}: no such file or folder")
        return verify(path, remote.sha256) if path.is_file() else path
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / remote.name
    if target.is_file():
        return verify(target, remote.sha256)
    log.info("downloading %s to %s", remote.url, target)
    with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False, suffix=".part") as tmp:
        part = Path(tmp.name)
        try:
            with urllib.request.urlopen(remote.url, timeout=timeout) as response:
                shutil.copyfileobj(response, tmp)
        except OSError as err:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"could not download {remote.url} ({err}); put the file at {target} or pass its path"
            ) from None
    try:
        verify(part, remote.sha256)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    part.rename(target)
    return target

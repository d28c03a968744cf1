"""The ImageNet weights of a ResNet: the user's file, else the cached copy, else torchvision's download.

Every one of them is checked against torchvision's published checksum (the SHA-256 prefix in the
file name, as `torch.hub` checks it), so a truncated download or a file holding other weights than
the settings name (whose preprocessing and labels the model would then get wrong) is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from refarch.datasets.download import DownloadError, RemoteFile, fetch, sha256_of
from refarch.images.vision import PublishedWeights

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class WeightsMismatch(ValueError):
    """A weights file that is not the published file the settings name."""


def check_published(path: Path, published: PublishedWeights) -> Path:
    """`path` if its SHA-256 starts with the published prefix, else WeightsMismatch naming both."""
    digest = sha256_of(path)
    if not digest.startswith(published.sha256_prefix):
        raise WeightsMismatch(
            f"{path}: SHA-256 {digest[:12]}... is not torchvision's ResNet-{published.depth} {published.name} "
            f"({published.filename}, SHA-256 {published.sha256_prefix}...); give that file, or set the settings "
            "model.depth and model.weights to the weights your file holds"
        )
    return path


def imagenet_weights_file(published: PublishedWeights, cache_dir: Path, local_path: str | Path | None = None) -> Path:
    """A verified copy of the published weights: `local_path`, else `cache_dir/<file>`, else a download there."""
    if local_path:
        path = fetch(RemoteFile(published.url), cache_dir, local_path)
        if not path.is_file():
            raise DownloadError(f"{path}: a weights file is expected, not a folder")
        return check_published(path, published)
    path = fetch(RemoteFile(published.url), cache_dir)
    try:
        return check_published(path, published)
    except WeightsMismatch as err:
        path.unlink(missing_ok=True)  # a broken cached copy must not stay in the way of a new download
        raise DownloadError(f"{err} (the cached copy was removed: run again to download it anew)") from None


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors only (`weights_only`): a weights file cannot run code when it is read."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise WeightsMismatch(f"{path}: expected a state dict of tensors, found {type(state).__name__}")
    return state

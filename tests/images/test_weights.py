"""ImageNet weights: torchvision's metadata, the published checksum, the user's file, never a download in tests."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
import torch

from refarch.datasets.download import DownloadError
from refarch.images.register import build_network
from refarch.images.vision import published_weights
from refarch.images.weights import WeightsMismatch, check_published, imagenet_weights_file
from refarch.runtime.config import ConfigError


def test_published_weights_come_from_torchvisions_metadata():
    v2 = published_weights(152, "IMAGENET1K_V2")
    assert v2.url == "https://download.pytorch.org/models/resnet152-f82ba261.pth"
    assert (v2.filename, v2.sha256_prefix) == ("resnet152-f82ba261.pth", "f82ba261")
    assert published_weights(152, "IMAGENET1K_V1").sha256_prefix == "394f9c45"
    with pytest.raises(ValueError, match="ResNet-18 has no published weights IMAGENET1K_V2"):
        published_weights(18, "IMAGENET1K_V2")


def test_settings_refuse_weights_torchvision_does_not_publish(images_settings):
    with pytest.raises(ConfigError, match="only IMAGENET1K_V1 weights for ResNet-34"):
        images_settings(model__depth=34, model__weights="IMAGENET1K_V2")


def _as_published(path, depth=18):
    """The V1 metadata with the checksum of `path`: what torchvision would publish for that file."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    published = published_weights(depth, "IMAGENET1K_V1")
    return dataclasses.replace(published, url=f"https://download.invalid/resnet{depth}-{digest}.pth")


def test_a_given_weights_file_is_checked_and_loaded(tmp_path, images_settings, monkeypatch):
    torch.manual_seed(11)
    source = build_network(images_settings(), weights_path="").net
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    published = _as_published(path)
    monkeypatch.setattr("refarch.images.vision.published_weights", lambda depth, name: published)
    network = build_network(images_settings(paths__weights_cache=str(tmp_path / "cache")), weights_path=str(path))
    assert network.provenance == {"weights": "IMAGENET1K_V1", "weights_source": str(path)}
    for key, value in source.state_dict().items():
        assert torch.equal(network.net.state_dict()[key], value), key
    assert not (tmp_path / "cache").exists()  # a given file is used where it is, nothing is downloaded


def test_a_file_of_other_weights_is_refused(tmp_path):
    path = tmp_path / "resnet18-wrong.pth"
    path.write_bytes(b"not the published weights")
    published = published_weights(18, "IMAGENET1K_V1")
    with pytest.raises(WeightsMismatch, match="is not torchvision's ResNet-18 IMAGENET1K_V1"):
        imagenet_weights_file(published, tmp_path / "cache", path)
    with pytest.raises(WeightsMismatch):
        check_published(path, published)


def test_a_corrupt_cached_copy_is_removed_not_used(tmp_path):
    published = published_weights(18, "IMAGENET1K_V1")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / published.filename).write_bytes(b"truncated download")
    with pytest.raises(DownloadError, match="the cached copy was removed"):
        imagenet_weights_file(published, cache)
    assert not (cache / published.filename).exists()


def test_a_verified_cached_copy_is_used_without_download(tmp_path, images_settings, monkeypatch):
    torch.manual_seed(12)
    net = build_network(images_settings(), weights_path="").net
    staged = tmp_path / "staged.pth"
    torch.save(net.state_dict(), staged)
    published = _as_published(staged)
    cache = tmp_path / "cache"
    cache.mkdir()
    staged.rename(cache / published.filename)
    monkeypatch.setattr("refarch.images.vision.published_weights", lambda depth, name: published)
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: pytest.fail("no download when the cache has it"))
    network = build_network(images_settings(model__pretrained=True, paths__weights_cache=str(cache)), weights_path="")
    assert network.provenance["weights_source"] == str(cache / published.filename)
    assert torch.equal(network.net.fc.weight, net.fc.weight)


def test_random_weights_are_seeded(images_settings):
    a = build_network(images_settings(model__seed=5), weights_path="")
    b = build_network(images_settings(model__seed=5), weights_path="")
    c = build_network(images_settings(model__seed=6), weights_path="")
    assert a.provenance["weights_source"] == "random (seed 5)"
    assert torch.equal(a.net.fc.weight, b.net.fc.weight) and not torch.equal(a.net.fc.weight, c.net.fc.weight)

"""Decoding and preprocessing: bit for bit what torchvision's transforms of the weights give, bad files named."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from refarch.images.preprocess import MAX_IMAGE_BYTES, ImageRejected, decode, inspect, preprocess, resize_and_crop
from refarch.images.vision import published_weights, torchvision

from .conftest import jpeg, png

SIZES = [(300, 200), (200, 300), (232, 232), (224, 224), (640, 481), (1000, 233), (97, 150), (233, 1001)]


@pytest.mark.parametrize(("depth", "weights"), [(152, "IMAGENET1K_V2"), (50, "IMAGENET1K_V1"), (18, "IMAGENET1K_V1")])
def test_preprocessing_equals_the_weights_transforms_bit_for_bit(depth, weights):
    published = published_weights(depth, weights)
    reference = torchvision().models.get_model_weights(f"resnet{depth}")[weights].transforms()
    rng = np.random.default_rng(depth)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in SIZES]
    batch = preprocess(images, published.preprocessing)
    assert batch.shape == (len(SIZES), 3, 224, 224) and batch.dtype == torch.float32
    for got, img in zip(batch, images, strict=True):
        assert torch.equal(got, reference(img))


def test_the_presets_differ_as_published():
    v2, v1 = published_weights(152, "IMAGENET1K_V2"), published_weights(152, "IMAGENET1K_V1")
    assert (v2.preprocessing.resize_size, v1.preprocessing.resize_size) == (232, 256)
    assert v2.preprocessing.crop_size == v1.preprocessing.crop_size == 224
    assert v2.preprocessing.mean == (0.485, 0.456, 0.406) and v2.preprocessing.interpolation == "bilinear"
    assert len(v2.labels) == 1000 and v2.labels == v1.labels
    assert (v2.labels[0], v2.labels[207], v2.labels[999]) == ("tench", "golden retriever", "toilet tissue")


def test_a_decoded_jpeg_matches_the_transforms_too():
    data = jpeg((410, 290))
    img = decode(data)
    reference = torchvision().models.ResNet152_Weights.IMAGENET1K_V2.transforms()
    assert torch.equal(preprocess([img], published_weights(152, "IMAGENET1K_V2").preprocessing)[0], reference(img))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "1"])
def test_every_mode_becomes_three_channels(mode):
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)).convert(mode)
    out = io.BytesIO()
    img.save(out, format="TIFF" if mode == "CMYK" else "PNG")
    decoded = decode(out.getvalue())
    assert decoded.mode == "RGB" and decoded.size == (80, 60)
    assert resize_and_crop(decoded, published_weights(18, "IMAGENET1K_V1").preprocessing).shape == (224, 224, 3)


def test_exif_orientation_turns_the_picture_upright():
    from refarch.images.generate import encode

    upright = Image.new("RGB", (120, 80), (220, 30, 30))
    upright.paste((30, 30, 220), (60, 0, 120, 80))  # left half red, right half blue
    stored = decode(encode(upright, "JPEG", "RGB", exif_rotate=True))
    assert stored.size == (120, 80)  # stored sideways (80x120) with orientation 6: shown as 120x80
    pixels = np.asarray(stored, dtype=int)
    assert pixels[:, :50, 0].mean() > 180 and pixels[:, :50, 2].mean() < 70  # red on the left
    assert pixels[:, 70:, 2].mean() > 180 and pixels[:, 70:, 0].mean() < 70  # blue on the right


def test_bad_files_are_named_by_their_reason():
    whole = jpeg((320, 240))
    cases = {
        "empty_file": b"",
        "not_an_image": b"just some text, no picture\n",
        "corrupt_image": whole[: len(whole) // 3],
    }
    for reason, data in cases.items():
        with pytest.raises(ImageRejected) as caught:
            decode(data)
        assert (caught.value.reason, caught.value.http_status) == (reason, 400)


def test_too_many_pixels_are_refused_from_the_header_alone():
    huge = png(Image.new("1", (7000, 6000)))  # 42 megapixels in a few kilobytes
    assert len(huge) < 100_000
    with pytest.raises(ImageRejected) as caught:
        inspect(huge)
    assert (caught.value.reason, caught.value.http_status) == ("too_many_pixels", 413)
    assert "7000x6000" in str(caught.value)
    assert inspect(png(Image.new("1", (6000, 6000))))[1:] == (6000, 6000)  # 36 MP: below the limit


def test_too_many_bytes_are_refused_before_reading():
    with pytest.raises(ImageRejected) as caught:
        inspect(b"\xff" * (MAX_IMAGE_BYTES + 1))
    assert (caught.value.reason, caught.value.http_status) == ("too_large", 413)

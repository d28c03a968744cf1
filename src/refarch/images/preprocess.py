"""Decode an image file and turn it into the network's input, exactly as the weights' transforms do.

The steps of torchvision's `ImageClassification` preset on a Pillow image: resize the shorter side
to `resize_size` (Pillow's resampling, which always antialiases), centre-crop `crop_size`, scale to
[0, 1] as float32, subtract the mean and divide by the standard deviation per channel. They are
re-implemented here so a batch is normalised in one tensor operation and the model needs no
transform object at load time; tests/images/test_preprocess.py checks the result against
torchvision's transforms bit for bit. Decoding follows torchvision's own image loader (Pillow,
converted to RGB), after turning the picture upright by its EXIF orientation.

Files are checked before they are decoded: the encoded size and the pixel count (read from the
header) are bounded, so a small file that inflates to gigabytes of pixels is refused, not decoded.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from refarch.images.vision import Preprocessing

if TYPE_CHECKING:
    import torch
    from PIL import Image

MAX_IMAGE_BYTES = 10 * 1024 * 1024  # an encoded image file
MAX_PIXELS = 40_000_000  # width x height: a 40-megapixel photo decodes to 120 MB of RGB

# torchvision's InterpolationMode values -> Pillow's resampling filters (torchvision's pil_modes_mapping)
_RESAMPLE = {"nearest": 0, "nearest-exact": 0, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5, "lanczos": 1}


class ImageRejected(ValueError):
    """A file or input that is no image the model can read. `reason` is what the quarantine table and the
    API say; `http_status` is the answer of the scoring app (400, or 413 for an image over the limits)."""

    def __init__(self, reason: str, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = reason
        self.http_status = http_status


def inspect(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header alone; ImageRejected when it is no image or too big."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageRejected("empty_file", "the file is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejected(
            "too_large", f"the image file has {len(data):,} bytes, over the limit of {MAX_IMAGE_BYTES:,}", 413
        )
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = str(img.format), img.size
    except Image.DecompressionBombError as err:
        raise ImageRejected("too_many_pixels", str(err), 413) from None
    except UnidentifiedImageError:  # its message names an in-memory file object: say what is expected instead
        raise ImageRejected("not_an_image", "not an image file (JPEG, PNG, GIF, BMP, TIFF, WebP...)") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageRejected("not_an_image", f"not an image file: {_short(err)}") from None
    if width * height > MAX_PIXELS:
        raise ImageRejected(
            "too_many_pixels",
            f"the image has {width}x{height} pixels, over the limit of {MAX_PIXELS:,}",
            413,
        )
    return fmt, width, height


def decode(data: bytes) -> Image.Image:
    """The picture as an upright RGB Pillow image; ImageRejected (with the reason) when it cannot be."""
    from PIL import Image, ImageOps

    inspect(data)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            upright = ImageOps.exif_transpose(img)
            return upright.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageRejected("corrupt_image", f"the image cannot be decoded: {_short(err)}") from None


def resize_and_crop(img: Image.Image, p: Preprocessing) -> np.ndarray:
    """Resize the shorter side and centre-crop, as torchvision's `resize` and `center_crop` do: HxWx3 uint8."""
    width, height = img.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = p.resize_size, int(p.resize_size * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    if (new_w, new_h) != (width, height):
        img = img.resize((new_w, new_h), _RESAMPLE[p.interpolation])
    top = round((new_h - p.crop_size) / 2.0)  # Python's rounding, as torchvision's center_crop
    left = round((new_w - p.crop_size) / 2.0)
    cropped = img.crop((left, top, left + p.crop_size, top + p.crop_size))
    return np.asarray(cropped.convert("RGB"), dtype=np.uint8)


def to_batch(pixels: Sequence[np.ndarray], p: Preprocessing) -> torch.Tensor:
    """N cropped HxWx3 uint8 images -> one normalised float32 NCHW tensor (in channels-last memory)."""
    import torch

    x = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).to(torch.float32)
    x = x / 255.0
    mean = torch.tensor(p.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(p.std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std)


def preprocess(images: Sequence[Image.Image], p: Preprocessing) -> torch.Tensor:
    """Decoded RGB images -> the network's input batch."""
    return to_batch([resize_and_crop(img, p) for img in images], p)


def _short(err: BaseException) -> str:
    return (str(err) or type(err).__name__).splitlines()[0][:200]

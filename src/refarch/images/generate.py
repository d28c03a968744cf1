"""Generated pictures: a folder to score, and a labelled folder to fine-tune on, with no download.

The folder to score holds what real folders hold: JPEG, PNG, GIF, BMP and WebP files of several
sizes and modes (RGB, grayscale, RGBA, palette, a JPEG rotated by its EXIF orientation), in
subfolders, plus at most three files that are no readable image (an empty file, a text file, a
truncated JPEG) for the quarantine. The labelled folder has one subfolder per class; a class is a
dominant colour, so even a network with random weights separates them from its features.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

COLOURS = {
    "red": (200, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 200),
    "yellow": (220, 200, 40),
    "purple": (140, 50, 170),
    "cyan": (40, 190, 200),
}
_FORMATS = (("JPEG", ".jpg", "RGB"), ("PNG", ".png", "RGBA"), ("PNG", ".png", "L"), ("GIF", ".gif", "P"))
_MORE = (("BMP", ".bmp", "RGB"), ("WEBP", ".webp", "RGB"))
BAD_FILES = ("empty.jpg", "notes.txt", "truncated.jpg")


def picture(rng: np.random.Generator, size: tuple[int, int], colour: tuple[int, int, int] | None = None):
    """A Pillow RGB picture: a noisy background and a few shapes, mostly of `colour` when given."""
    from PIL import Image, ImageDraw

    width, height = size
    base = np.asarray(colour if colour is not None else rng.integers(0, 256, 3), dtype=np.float64)
    background = base * 0.35 + rng.normal(0, 18, (height, width, 3))
    img = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, width - 4)), int(rng.integers(0, height - 4))
        x1, y1 = int(rng.integers(x0 + 3, width + 1)), int(rng.integers(y0 + 3, height + 1))
        jitter = rng.integers(-30, 31, 3) if colour is not None else rng.integers(-128, 128, 3)
        fill = tuple(int(v) for v in np.clip(base + jitter, 0, 255))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=fill)
    return img


def encode(img, fmt: str, mode: str, exif_rotate: bool = False) -> bytes:
    """The picture as a file of `fmt` in `mode` (JPEG: optionally stored sideways with an EXIF orientation)."""
    from PIL import Image

    out = io.BytesIO()
    if mode == "P":
        converted = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    else:
        converted = img.convert(mode)
    if exif_rotate and fmt == "JPEG":
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
        converted.transpose(Image.Transpose.ROTATE_90).save(out, format=fmt, quality=90, exif=exif.tobytes())
    elif fmt == "JPEG":
        converted.save(out, format=fmt, quality=90)
    else:
        converted.save(out, format=fmt)
    return out.getvalue()


def generate_images(folder: Path, n_images: int, bad_files: int, seed: int) -> list[Path]:
    """Write `n_images` pictures and `bad_files` unreadable files under `folder` (replaced); their paths."""
    folder = Path(folder)
    _clear(folder)
    rng = np.random.default_rng(seed)
    formats = _FORMATS + (_MORE if _webp_available() else _MORE[:1])
    written = []
    for i in range(n_images):
        fmt, suffix, mode = formats[i % len(formats)]
        size = (int(rng.integers(160, 640)), int(rng.integers(120, 480)))
        sub = folder / f"batch_{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"image_{i:05d}{suffix}"
        path.write_bytes(encode(picture(rng, size), fmt, mode, exif_rotate=i % 7 == 3))
        written.append(path)
    bad = folder / "bad"
    if bad_files:
        bad.mkdir(parents=True, exist_ok=True)
    for name in BAD_FILES[:bad_files]:
        path = bad / name
        if name == "empty.jpg":
            path.write_bytes(b"")
        elif name == "notes.txt":
            path.write_text("not an image: a note someone left in the folder\n")
        else:
            whole = encode(picture(rng, (320, 240)), "JPEG", "RGB")
            path.write_bytes(whole[: len(whole) // 3])
        written.append(path)
    return written


def generate_labelled(folder: Path, classes: Sequence[str], per_class: int, seed: int) -> dict[str, list[Path]]:
    """`folder/<class>/*.jpg`, one class per colour name of COLOURS (folder replaced)."""
    unknown = sorted(set(classes) - set(COLOURS))
    if unknown:
        raise ValueError(f"no colour for class(es) {', '.join(unknown)}; known: {', '.join(COLOURS)}")
    folder = Path(folder)
    _clear(folder)
    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {}
    for name in classes:
        sub = folder / name
        sub.mkdir(parents=True, exist_ok=True)
        out[name] = []
        for i in range(per_class):
            size = (int(rng.integers(160, 400)), int(rng.integers(120, 300)))
            path = sub / f"{name}_{i:04d}.jpg"
            path.write_bytes(encode(picture(rng, size, COLOURS[name]), "JPEG", "RGB"))
            out[name].append(path)
    return out


def _clear(folder: Path) -> None:
    """Remove the files of an earlier generation (a volume path may refuse removing the folder itself)."""
    if folder.is_dir():
        for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def _webp_available() -> bool:
    from PIL import features

    return bool(features.check("webp"))

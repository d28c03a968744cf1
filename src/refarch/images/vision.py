"""torch and torchvision: the import, the ResNet architectures and their published ImageNet weights.

torchvision's C++ extension (its detection ops and image codecs) is not needed here: images are
decoded with Pillow. Where that extension cannot load (a CUDA build of torchvision beside a CPU
build of torch, as on a laptop that installed the CPU wheel of torch), `import torchvision` fails
while registering fake kernels for two detection ops; `torchvision()` declares those two op
schemas first so the pure-Python parts (models, weights metadata, transforms) import. On
Databricks Runtime ML the two builds match and the plain import is used.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEPTHS = (18, 34, 50, 101, 152)
_OP_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_SHIM: list[Any] = []  # keeps the op library alive: its definitions go when it is collected


def torchvision() -> ModuleType:
    """`import torchvision`, working around a C++ extension that does not load (see the module doc)."""
    try:
        import torchvision as tv

        return tv
    except RuntimeError as err:
        if "torchvision::" not in str(err) or "does not exist" not in str(err):
            raise
    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    library = torch.library.Library("torchvision", "DEF")
    for schema in _OP_SCHEMAS.values():
        library.define(schema)
    _SHIM.append(library)
    import torchvision as tv

    log.info("torchvision %s without its C++ extension (images are decoded with Pillow)", tv.__version__)
    return tv


def device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_resnet(depth: int, num_classes: int) -> torch.nn.Module:
    """torchvision's ResNet-<depth> with randomly initialised weights and `num_classes` outputs."""
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth must be one of {', '.join(map(str, DEPTHS))}, not {depth}")
    models = torchvision().models
    return models.get_model(f"resnet{depth}", weights=None, num_classes=num_classes)


@dataclass(frozen=True)
class Preprocessing:
    """What the weights' own transforms do: resize the shorter side, centre-crop, scale to [0, 1], normalise."""

    resize_size: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str  # torchvision InterpolationMode value: bilinear, bicubic, nearest

    def as_config(self) -> dict[str, Any]:
        return {
            "resize_size": self.resize_size,
            "crop_size": self.crop_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            resize_size=int(data["resize_size"]),
            crop_size=int(data["crop_size"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            interpolation=str(data["interpolation"]),
        )


@dataclass(frozen=True)
class PublishedWeights:
    """torchvision's published ImageNet weights of one ResNet: file, checksum prefix, labels, transforms."""

    depth: int
    name: str  # the enum member: IMAGENET1K_V1 or IMAGENET1K_V2
    url: str
    labels: tuple[str, ...]
    preprocessing: Preprocessing

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        """torchvision's published checksum: the first hex digits of the file's SHA-256, in its name."""
        return self.filename.rsplit("-", 1)[-1].split(".", 1)[0]


def published_weights(depth: int, name: str) -> PublishedWeights:
    """`ResNet<depth>_Weights.<name>` from torchvision's metadata: nothing is downloaded."""
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth must be one of {', '.join(map(str, DEPTHS))}, not {depth}")
    enum = torchvision().models.get_model_weights(f"resnet{depth}")
    try:
        weights = enum[name]
    except KeyError:
        known = ", ".join(w.name for w in enum)
        raise ValueError(f"ResNet-{depth} has no published weights {name} (torchvision has {known})") from None
    transforms = weights.transforms()
    if transforms.resize_size[0] < transforms.crop_size[0]:  # never for ResNets: the crop then needs no padding
        raise ValueError(f"{weights}: resize {transforms.resize_size} is smaller than the crop {transforms.crop_size}")
    preprocessing = Preprocessing(
        resize_size=int(transforms.resize_size[0]),
        crop_size=int(transforms.crop_size[0]),
        mean=tuple(transforms.mean),
        std=tuple(transforms.std),
        interpolation=transforms.interpolation.value,
    )
    return PublishedWeights(depth, name, weights.url, tuple(weights.meta["categories"]), preprocessing)

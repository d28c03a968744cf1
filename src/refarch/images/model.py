"""The served image model: an MLflow PythonModel with a typed input, so a bad request fails validation.

`{"image": "<base64 of the file>", "k": 3}` in; the k most probable classes (index, label,
probability), most probable first, out. The pydantic types are the contract with the scoring app:
an input that is not base64, not an image, or over the size limits is refused before the model
runs (400; 413 for an image over the limits). The network, its labels and its preprocessing travel
with the model (artifacts and model_config), with refarch's code and pinned requirements, so it
loads where refarch is not installed. It runs on the GPU when there is one.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from refarch.images.preprocess import MAX_IMAGE_BYTES, MAX_PIXELS, ImageRejected, decode, inspect, preprocess
from refarch.images.settings import MAX_K
from refarch.images.vision import Preprocessing

if TYPE_CHECKING:
    import torch
    from PIL import Image

log = logging.getLogger(__name__)

WEIGHTS_ARTIFACT = "weights"
LABELS_ARTIFACT = "labels"
MAX_BASE64_CHARS = 4 * math.ceil(MAX_IMAGE_BYTES / 3)
REQUIREMENTS = ("torch", "torchvision", "pillow", "numpy", "pydantic")


class ImageInput(BaseModel):
    """One image to classify."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(
        min_length=1,
        description=f"the image file (JPEG, PNG, GIF, BMP, TIFF, WebP...) as base64, at most {MAX_IMAGE_BYTES:,} "
        f"bytes and {MAX_PIXELS:,} pixels; a data: URL is accepted too",
    )
    k: int | None = Field(None, ge=1, le=MAX_K, description="how many classes, most probable first")

    @field_validator("image")
    @classmethod
    def _readable_image(cls, value: str) -> str:
        inspect(_decode_base64(value))  # the header only: cheap, and a non-image fails here, per input
        return value

    def data(self) -> bytes:
        """The image file's bytes."""
        return _decode_base64(self.image)


class ClassScore(BaseModel):
    index: int = Field(description="the class's output index")
    label: str
    probability: float = Field(ge=0.0, le=1.0)


class ImageClassification(BaseModel):
    classes: list[ClassScore] = Field(description="the k most probable classes, most probable first")


def _decode_base64(value: str) -> bytes:
    """base64 (line breaks allowed, data: URL prefix allowed) -> bytes; a pydantic error (400/413) otherwise."""
    text = value
    if text.startswith("data:"):
        header, sep, rest = text.partition(",")
        if not sep or not header.endswith(";base64"):
            raise PydanticCustomError("not_base64", "a data: URL must be base64 (data:<type>;base64,...)")
        text = rest
    compact = "".join(text.split())  # line breaks of wrapped base64 (the request body bounds its size)
    if len(compact) > MAX_BASE64_CHARS:
        raise PydanticCustomError(
            "image_too_large",
            "{message}",
            {"message": f"the image is over the limit of {MAX_IMAGE_BYTES:,} bytes", "http_status": 413},
        )
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError("not_base64", "the image is not valid base64") from None
    try:
        inspect(data)
    except ImageRejected as err:
        kind = "image_too_large" if err.http_status == 413 else err.reason
        raise PydanticCustomError(kind, "{message}", {"message": str(err), "http_status": err.http_status}) from None
    return data


class ImageClassifier(mlflow.pyfunc.PythonModel):
    """A torchvision ResNet with its labels and preprocessing; the k best classes per image.

    A request without `k` gets the model's `top_k` (its model_config, from conf/images.yml).
    """

    def __init__(self) -> None:
        self.net: torch.nn.Module | None = None
        self.labels: list[str] = []
        self.preprocessing: Preprocessing | None = None
        self.depth = 0
        self.default_k = 1
        self.forward_batch = 1
        self.device: Any = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle nothing: the network, labels and preprocessing are artifacts, loaded by `load_context`."""
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from refarch.images.vision import build_resnet
        from refarch.images.weights import load_state_dict

        config = context.model_config or {}
        missing = {"depth", "top_k", "forward_batch", "preprocessing"} - set(config)
        if missing:
            raise RuntimeError(f"the image model was saved without model_config {', '.join(sorted(missing))}")
        self.labels = json.loads(Path(context.artifacts[LABELS_ARTIFACT]).read_text())
        self.preprocessing = Preprocessing.from_config(config["preprocessing"])
        self.depth = int(config["depth"])
        self.default_k = int(config["top_k"])
        self.forward_batch = int(config["forward_batch"])
        net = build_resnet(int(config["depth"]), len(self.labels))
        net.load_state_dict(load_state_dict(Path(context.artifacts[WEIGHTS_ARTIFACT])))
        self.use(net)

    def use(self, net: torch.nn.Module) -> None:
        """Serve `net`: in eval mode, on the GPU when there is one, in channels-last memory.

        Channels-last is the layout the preprocessed batch already has (HxWx3 pixels) and the one
        oneDNN and cuDNN convolutions run fastest in (measured here: +10-20 % images/s on the CPU).
        """
        import torch

        from refarch.images.vision import device

        self.device = device()
        self.net = net.eval().to(self.device, memory_format=torch.channels_last)
        log.info("image model on %s", self.device)

    def predict(self, model_input: list[ImageInput], params: dict[str, Any] | None = None) -> list[ImageClassification]:
        images = [decode(item.data()) for item in model_input]  # ImageRejected (400) names the first bad one
        probabilities = self.probabilities(images)
        return [self.top(row, item.k) for row, item in zip(probabilities, model_input, strict=True)]

    def probabilities(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Softmax over the classes, one row per image, in forward passes of at most `forward_batch` images."""
        import torch

        if self.net is None or self.preprocessing is None:
            raise RuntimeError("the model context was not loaded")
        rows = []
        with torch.inference_mode():
            for start in range(0, len(images), self.forward_batch):
                x = preprocess(images[start : start + self.forward_batch], self.preprocessing)
                logits = self.net(x.to(self.device, non_blocking=True))
                rows.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(rows) if rows else np.zeros((0, len(self.labels)), dtype=np.float32)

    def top(self, probabilities: np.ndarray, k: int | None) -> ImageClassification:
        """The k most probable classes (ties: the lower index first)."""
        k = min(k or self.default_k, len(probabilities))
        best = np.argsort(-probabilities, kind="stable")[:k]
        return ImageClassification(
            classes=[ClassScore(index=int(i), label=self.labels[i], probability=float(probabilities[i])) for i in best]
        )

    def classify_files(self, files: Sequence[bytes], k: int) -> list[ImageClassification | ImageRejected]:
        """Batch scoring: each file's classes, or why it is no readable image (nothing raises for a bad file)."""
        decoded: list[Image.Image | ImageRejected] = []
        for data in files:
            try:
                decoded.append(decode(bytes(data) if data is not None else b""))
            except ImageRejected as err:
                decoded.append(err)
        good = [d for d in decoded if not isinstance(d, ImageRejected)]
        rows = iter(self.probabilities(good))
        return [d if isinstance(d, ImageRejected) else self.top(next(rows), k) for d in decoded]


def requirements() -> list[str]:
    """The distributions the model imports, pinned to this environment (public version: `2.7.0+cu126` -> `2.7.0`)."""
    from refarch.runtime.tracking import pinned_requirements

    return [pin.split("+", 1)[0] for pin in pinned_requirements(*REQUIREMENTS)]


def example_image(size: tuple[int, int] = (64, 48)) -> bytes:
    """A small JPEG for the logged input example."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, (40, 90, 160))
    ImageDraw.Draw(img).ellipse((8, 6, size[0] - 8, size[1] - 6), fill=(230, 180, 40))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _model_arguments(
    net: torch.nn.Module,
    labels: Sequence[str],
    preprocessing: Preprocessing,
    folder: Path,
    *,
    depth: int,
    top_k: int,
    forward_batch: int,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    import torch

    from refarch.runtime.tracking import model_code_paths

    if len(labels) != net.fc.out_features:
        raise ValueError(f"{len(labels)} labels for a network with {net.fc.out_features} outputs")
    weights = folder / "weights.pt"
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, weights)
    labels_file = folder / "labels.json"
    labels_file.write_text(json.dumps(list(labels)))
    return {
        "python_model": ImageClassifier(),
        "artifacts": {WEIGHTS_ARTIFACT: str(weights), LABELS_ARTIFACT: str(labels_file)},
        "model_config": {
            "depth": depth,
            "top_k": top_k,
            "forward_batch": forward_batch,
            "preprocessing": preprocessing.as_config(),
            **provenance,
        },
        "input_example": [{"image": base64.b64encode(example_image()).decode(), "k": min(3, len(labels))}],
        "code_paths": model_code_paths(),
        "pip_requirements": requirements(),
    }


def log_image_classifier(
    net: torch.nn.Module,
    labels: Sequence[str],
    preprocessing: Preprocessing,
    *,
    name: str = "model",
    **settings: Any,
) -> mlflow.models.model.ModelInfo:
    """Log the network as the pyfunc image model in the active run.

    `settings`: depth, top_k, forward_batch and provenance (the weights' name and source, kept in the
    model_config for whoever reads it later), as `_model_arguments` takes them.
    """
    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.pyfunc.log_model(name=name, **_model_arguments(net, labels, preprocessing, Path(tmp), **settings))


def save_image_classifier(
    net: torch.nn.Module, labels: Sequence[str], preprocessing: Preprocessing, path: Path, **settings: Any
) -> Path:
    """Save the pyfunc model to a folder (no tracking server): for benchmarks and containers."""
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.pyfunc.save_model(str(path), **_model_arguments(net, labels, preprocessing, Path(tmp), **settings))
    return path

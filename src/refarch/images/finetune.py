"""Transfer learning: the champion's ResNet, frozen, with a new last layer trained on labelled images.

The folder has one subfolder per class (torchvision's ImageFolder layout). Each class is split
into a training and a held-out part; the backbone's features are computed once, then only the
new fully connected layer is trained, for many epochs in seconds. Features are standardised
for training and the standardisation is folded into the layer afterwards, so the result is a
plain torchvision ResNet that the image model serves like any other.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from refarch.images.preprocess import ImageRejected, decode, preprocess
from refarch.images.settings import Finetune

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from refarch.images.model import ImageClassifier
    from refarch.images.vision import Preprocessing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledImages:
    paths: list[str]
    labels: list[int]  # index into `classes`
    images: list[Image.Image]
    classes: tuple[str, ...]
    skipped: pd.DataFrame  # path, reason: files that are no readable image


@dataclass(frozen=True)
class FineTuned:
    net: torch.nn.Module
    classes: tuple[str, ...]
    train_size: int
    valid_size: int
    accuracy: float  # on the held-out images
    evaluation: pd.DataFrame  # path, label, predicted, probability of each held-out image
    skipped: pd.DataFrame


def read_labelled(folder: Path) -> LabelledImages:
    """Every file of `folder/<class>/...`, decoded; unreadable files are skipped and listed."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected one subfolder per class)")
    classes = tuple(sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))))
    if len(classes) < 2:
        raise ValueError(f"{folder}: {len(classes)} class subfolder(s); fine-tuning needs at least 2")
    paths, labels, images, skipped = [], [], [], []
    for index, name in enumerate(classes):
        for path in sorted(p for p in (folder / name).rglob("*") if p.is_file() and not p.name.startswith(".")):
            try:
                images.append(decode(path.read_bytes()))
            except ImageRejected as err:
                skipped.append({"path": str(path), "reason": err.reason})
                continue
            paths.append(str(path))
            labels.append(index)
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    few = [c for c, n in zip(classes, counts, strict=True) if n < 2]
    if few:
        raise ValueError(f"{folder}: class(es) {', '.join(few)} have fewer than 2 readable images")
    return LabelledImages(paths, labels, images, classes, pd.DataFrame(skipped, columns=["path", "reason"]))


def stratified_split(labels: Sequence[int], valid_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, valid): `valid_share` of each class held out, at least one image on each side."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    train, valid = [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_valid = min(len(members) - 1, max(1, round(valid_share * len(members))))
        valid.extend(members[:n_valid])
        train.extend(members[n_valid:])
    return np.sort(np.asarray(train)), np.sort(np.asarray(valid))


def features(
    net: torch.nn.Module, images: Sequence[Image.Image], p: Preprocessing, batch_size: int, device: torch.device
) -> torch.Tensor:
    """The backbone's output (the input of its last layer) for each image, on the CPU."""
    import torch

    backbone = copy.deepcopy(net)
    backbone.fc = torch.nn.Identity()
    backbone.eval().to(device)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = preprocess(images[start : start + batch_size], p).to(device)
            out.append(backbone(x).float().cpu())
    return torch.cat(out)


def train_head(x: torch.Tensor, y: torch.Tensor, n_classes: int, settings: Finetune) -> torch.nn.Linear:
    """A linear layer trained with Adam on standardised features, the standardisation folded in."""
    import torch

    torch.manual_seed(settings.seed)
    mean = x.mean(dim=0)
    scale = x.std(dim=0).clamp_min(1e-6)
    z = (x - mean) / scale
    head = torch.nn.Linear(x.shape[1], n_classes)
    optimiser = torch.optim.Adam(head.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(settings.epochs):
        optimiser.zero_grad()
        loss = loss_fn(head(z), y)
        loss.backward()
        optimiser.step()
    folded = torch.nn.Linear(x.shape[1], n_classes)
    with torch.no_grad():
        weight = head.weight / scale
        folded.weight.copy_(weight)
        folded.bias.copy_(head.bias - weight @ mean)
    log.info("last layer trained: %d epochs, final training loss %.4f", settings.epochs, float(loss.detach()))
    return folded


def finetune(base: ImageClassifier, data: LabelledImages, settings: Finetune) -> FineTuned:
    """The base model's network with a new last layer for `data.classes`, and its held-out accuracy."""
    import torch

    if base.net is None or base.preprocessing is None:
        raise RuntimeError("the base model is not loaded")
    train, valid = stratified_split(data.labels, settings.valid_share, settings.seed)
    y = torch.as_tensor(data.labels, dtype=torch.long)
    x = features(base.net, data.images, base.preprocessing, base.forward_batch, base.device)
    head = train_head(x[train], y[train], len(data.classes), settings)
    net = copy.deepcopy(base.net).cpu()
    net.fc = head
    net.eval()
    with torch.inference_mode():
        probabilities = torch.softmax(head(x[valid]), dim=1).numpy()
    predicted = probabilities.argmax(axis=1)
    truth = np.asarray(data.labels)[valid]
    evaluation = pd.DataFrame(
        {
            "path": np.asarray(data.paths)[valid],
            "label": [data.classes[i] for i in truth],
            "predicted": [data.classes[i] for i in predicted],
            "probability": probabilities.max(axis=1),
        }
    )
    accuracy = float((predicted == truth).mean())
    log.info("fine-tuned on %d images, held-out accuracy %.3f on %d", len(train), accuracy, len(valid))
    return FineTuned(net, data.classes, len(train), len(valid), accuracy, evaluation, data.skipped)


def accuracy_of(model: ImageClassifier, images: Sequence[Image.Image], labels: Sequence[str]) -> float:
    """Share of `images` whose most probable class is the label (a model with other classes scores 0)."""
    probabilities = model.probabilities(images)
    predicted = [model.labels[i] for i in probabilities.argmax(axis=1)]
    return float(np.mean([p == t for p, t in zip(predicted, labels, strict=True)]))

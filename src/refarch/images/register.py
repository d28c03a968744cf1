"""Build the ResNet the settings name, log it as the pyfunc image model, register it, move `champion`.

Weights: a file the user gives (a Unity Catalog volume on Databricks, a local path elsewhere),
else, with `model.pretrained`, the cached copy of torchvision's published file or a download of
it, each checked against the published checksum; else (the local target) random weights, seeded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from refarch.images.settings import Settings
from refarch.runtime.tracking import registered_model_name

if TYPE_CHECKING:
    import torch

    from refarch.images.vision import Preprocessing
    from refarch.runtime.config import Config

log = logging.getLogger(__name__)

CHAMPION = "champion"


@dataclass(frozen=True)
class Network:
    """A ResNet ready to log: its depth, labels and preprocessing, and where its weights came from."""

    net: torch.nn.Module
    depth: int
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    provenance: dict[str, str]  # weights (the published name), weights_source (file or random seed), ...


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    run_id: str
    promoted: bool

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def build_network(settings: Settings, *, weights_path: str) -> Network:
    """ResNet-<depth> with the published weights (file, cache or download) or, unless pretrained, random ones."""
    import torch

    from refarch.images.vision import build_resnet, published_weights
    from refarch.images.weights import imagenet_weights_file, load_state_dict

    m = settings.model
    published = published_weights(m.depth, m.weights)
    if weights_path or m.pretrained:
        path = imagenet_weights_file(published, Path(settings.paths.weights_cache), weights_path or None)
        net = build_resnet(m.depth, len(published.labels))
        net.load_state_dict(load_state_dict(path))
        log.info("ResNet-%d with %s weights from %s", m.depth, published.name, path)
        source = str(path)
    else:
        torch.manual_seed(m.seed)
        net = build_resnet(m.depth, len(published.labels))
        log.info("ResNet-%d, random weights (seed %d): not pretrained and no file given", m.depth, m.seed)
        source = f"random (seed {m.seed})"
    provenance = {"weights": published.name, "weights_source": source}
    return Network(net, m.depth, published.labels, published.preprocessing, provenance)


def register_network(
    network: Network,
    settings: Settings,
    config: Config,
    *,
    model_name: str,
    promote: bool,
    metrics: dict[str, float] | None = None,
    run_name: str = "register",
) -> Registered:
    """Log the pyfunc model in a new run, register it as `model_name`, move `champion` when `promote`."""
    import mlflow
    from mlflow import MlflowClient

    from refarch.images.model import log_image_classifier

    m = settings.model
    name = registered_model_name(config, model_name)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({"depth": network.depth, "classes": len(network.labels), **network.provenance})
        if metrics:
            mlflow.log_metrics(metrics)
        info = log_image_classifier(
            network.net,
            network.labels,
            network.preprocessing,
            depth=network.depth,
            top_k=m.top_k,
            forward_batch=m.forward_batch,
            provenance=network.provenance,
        )
    version = str(mlflow.register_model(info.model_uri, name).version)
    if promote:
        MlflowClient().set_registered_model_alias(name, CHAMPION, version)
        log.info("registered %s version %s as @%s", name, version, CHAMPION)
    else:
        log.info("registered %s version %s (alias %s not moved)", name, version, CHAMPION)
    return Registered(name=name, version=version, run_id=run.info.run_id, promoted=promote)


def champion_uri(config: Config, model_name: str) -> str:
    return f"models:/{registered_model_name(config, model_name)}@{CHAMPION}"

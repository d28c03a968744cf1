"""Fixtures of the image tests: a small ResNet with random weights saved as the image model, pictures made here.

Nothing is downloaded: the network is torchvision's ResNet-18 with randomly initialised weights,
the labels and preprocessing come from torchvision's weights metadata, the pictures from Pillow.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from refarch.images.settings import Settings


def jpeg(size: tuple[int, int] = (96, 72), colour: tuple[int, int, int] = (200, 40, 40), seed: int = 0) -> bytes:
    from refarch.images.generate import encode, picture

    return encode(picture(np.random.default_rng(seed), size, colour), "JPEG", "RGB")


def png(img) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    """One intra-op thread: on a machine whose cores are shared, OpenMP threads that wait for each other at
    every layer make a forward pass 10-20 times slower than one thread (measured: ResNet-18, 2 busy cores)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def images_settings(config) -> Callable[..., Settings]:
    """conf/images.yml for the local target with overrides: `images_settings(model__depth=18)`.

    Every test model is a ResNet-18 with torchvision's IMAGENET1K_V1 preset (random weights).
    """
    from refarch.runtime.config import load_config

    conf = load_config("images", "local", root=config.root)
    small = {"model.depth": 18, "model.weights": "IMAGENET1K_V1", "model.forward_batch": 8}

    def make(**overrides: Any) -> Settings:
        return conf.settings(Settings, {**small, **{k.replace("__", "."): v for k, v in overrides.items()}})

    return make


@pytest.fixture(scope="session")
def resnet18():
    """torchvision's ResNet-18 with seeded random weights, its labels and preprocessing (IMAGENET1K_V1)."""
    import torch

    from refarch.images.vision import build_resnet, published_weights

    published = published_weights(18, "IMAGENET1K_V1")
    torch.manual_seed(3)
    return build_resnet(18, 1000).eval(), published


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, resnet18) -> Path:
    """The ResNet-18 saved as the pyfunc image model (top_k 5), no registry involved."""
    from refarch.images.model import save_image_classifier

    net, published = resnet18
    return save_image_classifier(
        net,
        published.labels,
        published.preprocessing,
        tmp_path_factory.mktemp("image-model") / "model",
        depth=18,
        top_k=5,
        forward_batch=8,
        provenance={"weights": published.name, "weights_source": "random (tests)"},
    )


@pytest.fixture(scope="session")
def classifier(model_dir: Path):
    """The saved model loaded back, unwrapped: the ImageClassifier itself."""
    import mlflow

    return mlflow.pyfunc.load_model(str(model_dir)).unwrap_python_model()


@pytest.fixture()
def image_folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "images"


@pytest.fixture(scope="session")
def mlflow_tracking(config) -> str:
    """MLflow on the test home's SQLite file (tracking and registry), experiment `images-tests`."""
    from refarch.runtime.tracking import configure_mlflow

    configure_mlflow(config, "images-tests")
    return config.target.mlflow.tracking_uri

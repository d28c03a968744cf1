"""One function per image notebook: what each notebook runs, with its inputs as explicit arguments.

The notebooks bootstrap (parameters, settings, Spark where needed), call these, and show what they return.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from refarch.images.settings import Settings

if TYPE_CHECKING:
    from refarch.images.finetune import FineTuned
    from refarch.images.register import Registered
    from refarch.images.score import ScoreResult
    from refarch.runtime.config import Config
    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisterResult:
    registered: Registered
    weights: str  # the published weights' name
    weights_source: str  # the file, or "random (seed N)"
    answer: pd.DataFrame  # the registered model's classes for one generated picture: index, label, probability


def register(settings: Settings, config: Config, *, weights_path: str, promote: bool) -> RegisterResult:
    """01_register: build the ResNet, register it (alias champion when `promote`), ask the registered model once."""
    import mlflow

    from refarch.images.model import example_image
    from refarch.images.register import build_network, register_network

    network = build_network(settings, weights_path=weights_path)
    registered = register_network(network, settings, config, model_name=settings.model_name, promote=promote)
    model = mlflow.pyfunc.load_model(registered.uri)
    (answer,) = model.predict([{"image": base64.b64encode(example_image()).decode()}])
    return RegisterResult(
        registered,
        network.provenance["weights"],
        network.provenance["weights_source"],
        pd.DataFrame([c.model_dump() for c in answer.classes], columns=["index", "label", "probability"]),
    )


def score(
    tables: Tables,
    settings: Settings,
    config: Config,
    *,
    images_path: str,
    scoring_date: dt.date | None,
) -> ScoreResult:
    """02_score: the folder (or generated pictures) scored by the champion into the tables, for the date."""
    from refarch.images.generate import generate_images
    from refarch.images.score import score_folder, stage_champion

    if not images_path:
        g = settings.generator
        folder = Path(settings.paths.generated) / "to_score"
        generate_images(folder, g.n_images, g.bad_files, g.seed)
        log.info("scoring %d generated pictures and %d unreadable files in %s", g.n_images, g.bad_files, folder)
        images_path = str(folder)
    date = scoring_date or dt.datetime.now(dt.timezone.utc).date()
    model = stage_champion(config, settings)
    return score_folder(tables, settings, model, images_path=images_path, scoring_date=date)


@dataclass(frozen=True)
class FinetuneResult:
    tuned: FineTuned
    champion_accuracy: float | None  # the current champion's on the same held-out images (None: none to compare)
    registered: Registered


def finetune(settings: Settings, config: Config, *, labelled_path: str, promote: bool) -> FinetuneResult:
    """03_finetune: a new last layer on the image champion's backbone, registered; champion moved if it wins."""
    import mlflow

    from refarch.images.finetune import accuracy_of, finetune, read_labelled
    from refarch.images.generate import generate_labelled
    from refarch.images.register import Network, champion_uri, register_network

    f = settings.finetune
    if not labelled_path:
        folder = Path(settings.paths.generated) / "labelled"
        generate_labelled(folder, f.generator.classes, f.generator.per_class, f.generator.seed)
        labelled_path = str(folder)
    data = read_labelled(Path(labelled_path))
    base = mlflow.pyfunc.load_model(champion_uri(config, settings.model_name)).unwrap_python_model()
    tuned = finetune(base, data, f)
    champion = _current_champion(config, f.model_name)
    champion_accuracy = None
    if champion is not None:
        valid = tuned.evaluation
        by_path = dict(zip(data.paths, data.images, strict=True))
        champion_accuracy = accuracy_of(champion, [by_path[p] for p in valid["path"]], list(valid["label"]))
    wins = champion_accuracy is None or tuned.accuracy >= champion_accuracy
    network = Network(
        tuned.net,
        base.depth,
        tuned.classes,
        base.preprocessing,
        {"weights": f"fine-tuned from {settings.model_name}", "weights_source": labelled_path},
    )
    metrics = {"valid_accuracy": tuned.accuracy, "train_images": float(tuned.train_size)}
    if champion_accuracy is not None:
        metrics["champion_valid_accuracy"] = champion_accuracy
    registered = register_network(
        network,
        settings,
        config,
        model_name=f.model_name,
        promote=promote and wins,
        metrics=metrics,
        run_name="finetune",
    )
    if promote and not wins:
        log.info(
            "the champion keeps its alias: held-out accuracy %.3f against the new model's %.3f",
            champion_accuracy,
            tuned.accuracy,
        )
    return FinetuneResult(tuned, champion_accuracy, registered)


def _current_champion(config: Config, model_name: str):
    """The loaded champion of `model_name`, or None when there is none yet."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from refarch.images.register import champion_uri

    try:
        return mlflow.pyfunc.load_model(champion_uri(config, model_name)).unwrap_python_model()
    except MlflowException:
        return None

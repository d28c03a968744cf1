"""Transfer learning: a new last layer on the champion's backbone, held-out accuracy, champion moved only on a win."""

from __future__ import annotations

import base64
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from refarch.images import steps
from refarch.images.finetune import stratified_split, train_head
from refarch.images.register import build_network, register_network


def test_stratified_split_holds_out_a_share_of_each_class():
    labels = [0] * 10 + [1] * 4 + [2] * 2
    train, valid = stratified_split(labels, valid_share=0.3, seed=1)
    y = np.asarray(labels)
    assert sorted([*train, *valid]) == list(range(16)) and not set(train) & set(valid)
    assert [int((y[valid] == c).sum()) for c in range(3)] == [3, 1, 1]  # at least one on each side


def test_the_new_layer_learns_despite_wildly_scaled_features(images_settings):
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0], [1, 1, 0], [0, 1, 1]], dtype=np.float32) * 3
    y = np.repeat(np.arange(3), 30)
    x = centres[y] + rng.normal(0, 0.5, (90, 3)).astype(np.float32)
    x *= np.array([1e4, 1e-3, 1.0], dtype=np.float32)  # standardisation makes the scales irrelevant
    layer = train_head(torch.from_numpy(x), torch.from_numpy(y), 3, images_settings().finetune)
    with torch.no_grad():
        predicted = layer(torch.from_numpy(x)).argmax(dim=1).numpy()
    assert (predicted == y).mean() >= 0.95  # the standardisation is folded into the layer's weights


@pytest.mark.slow
def test_finetuning_registers_a_model_for_the_folders_classes(images_settings, config, mlflow_tracking, tmp_path):
    settings = images_settings(
        model_name="images_ft_base",
        finetune__model_name="images_ft_test",
        paths__generated=str(tmp_path / "generated"),
        finetune__generator__per_class=12,
    )
    torch.manual_seed(0)
    register_network(
        build_network(settings, weights_path=""), settings, config, model_name=settings.model_name, promote=True
    )
    first = steps.finetune(settings, config, labelled_path="", promote=True)
    tuned = first.tuned
    assert tuned.classes == ("blue", "green", "red")
    assert (tuned.train_size, tuned.valid_size) == (27, 9)
    assert tuned.accuracy >= 0.75, tuned.evaluation  # colours, through a network with random weights
    assert first.champion_accuracy is None and first.registered.promoted

    model = mlflow.pyfunc.load_model("models:/images_ft_test@champion")
    paths = tuned.evaluation["path"].tolist()
    answers = model.predict([{"image": base64.b64encode(Path(p).read_bytes()).decode()} for p in paths])
    assert [a.classes[0].label for a in answers] == tuned.evaluation["predicted"].tolist()
    assert all(len(a.classes) == 3 for a in answers)  # k (5 by default) is clipped to the 3 classes

    second = steps.finetune(settings, config, labelled_path="", promote=True)
    assert second.champion_accuracy == pytest.approx(tuned.accuracy)  # the same images, the champion measured
    alias = str(MlflowClient().get_model_version_by_alias("images_ft_test", "champion").version)
    assert second.registered.promoted and alias == second.registered.version


def test_a_losing_model_does_not_take_the_alias(images_settings, config, mlflow_tracking, tmp_path, monkeypatch):
    from refarch.images import finetune as module

    settings = images_settings(
        model_name="images_ft_base2",
        finetune__model_name="images_ft_loser",
        paths__generated=str(tmp_path / "generated"),
        finetune__generator__per_class=4,
        finetune__epochs=5,
    )
    torch.manual_seed(1)
    register_network(
        build_network(settings, weights_path=""), settings, config, model_name=settings.model_name, promote=True
    )
    first = steps.finetune(settings, config, labelled_path="", promote=True)
    monkeypatch.setattr(module, "accuracy_of", lambda model, images, labels: 1.01)  # a champion nobody beats
    second = steps.finetune(settings, config, labelled_path="", promote=True)
    assert not second.registered.promoted
    alias = str(MlflowClient().get_model_version_by_alias("images_ft_loser", "champion").version)
    assert alias == first.registered.version != second.registered.version

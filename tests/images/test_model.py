"""The pyfunc image model: typed input, top-k classes in order, the network's own probabilities, no refarch needed."""

from __future__ import annotations

import base64
import textwrap

import mlflow
import numpy as np
import pytest
import torch
from pydantic import ValidationError

from refarch.images.model import ImageClassification, ImageInput, requirements
from refarch.images.preprocess import decode, preprocess

from .conftest import jpeg, png


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_top_k_are_the_networks_most_probable_classes_in_order(classifier, resnet18):
    net, published = resnet18
    pictures = [jpeg((200, 150), seed=1), jpeg((90, 300), colour=(40, 70, 200), seed=2)]
    answers = classifier.predict([ImageInput(image=b64(p), k=7) for p in pictures])
    with torch.inference_mode():
        expected = torch.softmax(net(preprocess([decode(p) for p in pictures], published.preprocessing)), dim=1)
    for answer, probabilities in zip(answers, expected, strict=True):
        assert isinstance(answer, ImageClassification) and len(answer.classes) == 7
        best = torch.topk(probabilities, 7)
        assert [c.index for c in answer.classes] == best.indices.tolist()
        assert [c.label for c in answer.classes] == [published.labels[i] for i in best.indices]
        got = [c.probability for c in answer.classes]
        assert got == sorted(got, reverse=True)
        np.testing.assert_allclose(got, best.values.numpy(), rtol=1e-5)


def test_k_defaults_to_the_models_top_k(classifier):
    (answer,) = classifier.predict([ImageInput(image=b64(jpeg()))])
    assert len(answer.classes) == 5  # model_config top_k of the fixture model


def test_the_logged_model_predicts_through_mlflow_with_plain_dicts(model_dir):
    model = mlflow.pyfunc.load_model(str(model_dir))
    (answer,) = model.predict([{"image": b64(jpeg()), "k": 2}])
    assert len(answer.classes) == 2 and 0 < answer.classes[1].probability <= answer.classes[0].probability <= 1


def test_the_model_runs_on_the_gpu_when_there_is_one(classifier):
    assert classifier.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert next(classifier.net.parameters()).device.type == classifier.device.type


def test_the_pickled_model_holds_no_network(model_dir):
    pickled = (model_dir / "python_model.pkl").stat().st_size
    assert pickled < 100_000, f"{pickled} bytes: the network must travel as the weights artifact only"


@pytest.mark.parametrize(
    ("image", "kind", "status"),
    [
        ("bm90IGFuIGltYWdl", "not_an_image", 400),  # base64 of "not an image"
        ("%%%not base64%%%", "not_base64", None),
        (b64(b""), "string_too_short", None),
        (b64(png(__import__("PIL.Image", fromlist=["Image"]).new("1", (7000, 6000)))), "image_too_large", 413),
    ],
    ids=["not-an-image", "not-base64", "empty", "too-many-pixels"],
)
def test_bad_inputs_fail_validation_with_their_reason(image, kind, status):
    with pytest.raises(ValidationError) as caught:
        ImageInput(image=image)
    (error,) = caught.value.errors()
    assert error["loc"] == ("image",) and error["type"] == kind
    assert (error.get("ctx") or {}).get("http_status") == status


def test_a_data_url_and_wrapped_base64_are_accepted():
    data = jpeg()
    wrapped = "\n".join(b64(data)[i : i + 76] for i in range(0, len(b64(data)), 76))
    assert ImageInput(image=f"data:image/jpeg;base64,{b64(data)}").data() == data
    assert ImageInput(image=wrapped).data() == data


def test_k_is_bounded():
    with pytest.raises(ValidationError):
        ImageInput(image=b64(jpeg()), k=0)
    with pytest.raises(ValidationError):
        ImageInput(image=b64(jpeg()), k=101)


def test_requirements_are_public_pins():
    pins = dict(p.split("==") for p in requirements())
    assert {"mlflow", "torch", "torchvision", "pillow", "numpy", "pydantic"} <= set(pins)
    assert pins["torch"] == torch.__version__.split("+")[0] and "+" not in "".join(pins.values())


def test_the_model_predicts_in_a_python_without_refarch(model_dir, python_without_refarch, tmp_path):
    picture = tmp_path / "picture.jpg"
    picture.write_bytes(jpeg((150, 100)))
    script = textwrap.dedent(
        f"""
        import base64, mlflow
        model = mlflow.pyfunc.load_model({str(model_dir)!r})
        data = base64.b64encode(open({str(picture)!r}, "rb").read()).decode()
        (answer,) = model.predict([{{"image": data, "k": 3}}])
        print([c.index for c in answer.classes])
        """
    )
    line = python_without_refarch.last_line(script, cwd=tmp_path)
    model = mlflow.pyfunc.load_model(str(model_dir))
    (expected,) = model.predict([{"image": b64(picture.read_bytes()), "k": 3}])
    assert line == str([c.index for c in expected.classes])

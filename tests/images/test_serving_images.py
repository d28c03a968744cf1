"""`refarch serve` for the image model over real HTTP: classes, 400 and 413 with JSON bodies, dynamic batching."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from refarch.serving.app import create_app
from refarch.serving.settings import ServeSettings

from .conftest import jpeg, png

MAX_BODY = 600_000


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module", params=[1, 8], ids=["unbatched", "batched"])
def server(request, model_dir, server_thread):
    settings = ServeSettings(max_body_bytes=MAX_BODY, max_batch=request.param, max_wait_ms=50)
    app = create_app(str(model_dir), auth=False, settings=settings)
    with server_thread(app) as srv:
        yield srv


def post(server, body) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(server.url + "/invocations", content=body, timeout=60)
    return httpx.post(server.url + "/invocations", json=body, timeout=60)


def test_an_image_gets_its_top_k_classes(server, model_dir):
    import mlflow

    picture = jpeg((300, 200), seed=4)
    r = post(server, {"inputs": [{"image": b64(picture), "k": 3}, {"image": b64(jpeg(seed=5))}]})
    assert r.status_code == 200, r.text
    first, second = r.json()["predictions"]
    assert [len(first["classes"]), len(second["classes"])] == [3, 5]
    (expected,) = mlflow.pyfunc.load_model(str(model_dir)).predict([{"image": b64(picture), "k": 3}])
    assert [c["index"] for c in first["classes"]] == [c.index for c in expected.classes]
    assert [c["label"] for c in first["classes"]] == [c.label for c in expected.classes]


def test_a_non_image_is_a_400_naming_the_input(server):
    r = post(server, {"inputs": [{"image": b64(jpeg())}, {"image": b64(b"%PDF-1.7 not a picture")}]})
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"] == "inputs.1.image: not an image file (JPEG, PNG, GIF, BMP, TIFF, WebP...)"
    assert error["details"][0]["type"] == "not_an_image"


def test_bad_base64_is_a_400(server):
    r = post(server, {"inputs": [{"image": "***"}]})
    assert r.status_code == 400 and r.json()["error"]["details"][0]["type"] == "not_base64"


def test_an_image_over_the_pixel_limit_is_a_413(server):
    r = post(server, {"inputs": [{"image": b64(png(Image.new("1", (7000, 6000))))}]})
    assert r.status_code == 413 and r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["code"] == "too_large" and "7000x6000 pixels" in error["message"]


def test_a_body_over_the_limit_is_a_413(server):
    r = post(server, {"inputs": [{"image": "A" * MAX_BODY}]})
    assert r.status_code == 413
    assert r.json() == {"error": {"code": "too_large", "message": f"request body over {MAX_BODY} bytes"}}


def test_a_corrupt_image_is_a_400_and_fails_alone(server):
    whole = jpeg((320, 240), seed=6)
    corrupt = {"inputs": [{"image": b64(whole[: len(whole) // 3])}]}  # a valid header, then nothing
    good = {"inputs": [{"image": b64(jpeg(seed=7)), "k": 1}]}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda body: post(server, body), [good, corrupt, good, good, corrupt, good]))
    statuses = [a.status_code for a in answers]
    assert statuses == [200, 400, 200, 200, 400, 200], [a.text for a in answers]
    assert answers[1].json()["error"]["code"] == "corrupt_image"
    assert len({a.text for a in answers if a.status_code == 200}) == 1  # the same picture, the same answer


def test_concurrent_requests_get_the_answers_of_unbatched_scoring(server, model_dir):
    import mlflow

    pictures = [jpeg((120 + 20 * i, 100), seed=10 + i) for i in range(8)]
    model = mlflow.pyfunc.load_model(str(model_dir))
    expected = [[c.index for c in model.predict([{"image": b64(p), "k": 4}])[0].classes] for p in pictures]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda p: post(server, {"inputs": [{"image": b64(p), "k": 4}]}), pictures))
    assert [a.status_code for a in answers] == [200] * 8
    got = [[c["index"] for c in a.json()["predictions"][0]["classes"]] for a in answers]
    assert got == expected


def test_batching_merges_concurrent_requests(model_dir, server_thread):
    app = create_app(str(model_dir), auth=False, settings=ServeSettings(max_batch=8, max_wait_ms=300))
    with server_thread(app) as srv, ThreadPoolExecutor(6) as pool:
        body = {"inputs": [{"image": b64(jpeg(seed=20))}]}
        answers = list(pool.map(lambda _: post(srv, body), range(6)))
        stats = app.state.refarch.model.batcher.stats
    assert [a.status_code for a in answers] == [200] * 6
    assert stats.requests == 6 and stats.calls < 6  # at least two requests shared a forward pass

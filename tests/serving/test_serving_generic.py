"""The app serves any refarch pyfunc: validation comes from the model's own input type."""

from __future__ import annotations

import warnings
from typing import Any

import httpx
import mlflow
import pytest
from pydantic import BaseModel, Field

from refarch.serving.app import create_app
from refarch.serving.auth import ApiKeys

KEY = "generic-key-0123456789"
pytestmark = pytest.mark.filterwarnings("ignore:.*Add type hints:UserWarning")  # the untyped model, on purpose


class Question(BaseModel):  # like the FAQ model's input: no extra="forbid" of its own
    question: str = Field(min_length=1, max_length=50)


class Match(BaseModel):
    answer: str
    probability: float


class EchoFaq(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: list[Question], params: dict[str, Any] | None = None) -> list[Match]:
        return [Match(answer=q.question.upper(), probability=0.5) for q in model_input]


with warnings.catch_warnings():  # MLflow warns, at class creation, that predict has no type hints
    warnings.simplefilter("ignore", UserWarning)

    class Untyped(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [len(str(x)) for x in model_input]


@pytest.fixture(scope="module")
def uris(tracking_uri):
    out = {}
    with mlflow.start_run(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "add type hints": the untyped model is on purpose
        for name, model in (("faq", EchoFaq()), ("untyped", Untyped())):
            out[name] = mlflow.pyfunc.log_model(name=name, python_model=model, pip_requirements=["mlflow"]).model_uri
    return out


def test_typed_model_of_another_pipeline(uris, server_thread):
    with server_thread(create_app(uris["faq"], api_keys=ApiKeys([KEY]))) as srv:
        ok = httpx.post(srv.url + "/invocations", json={"inputs": [{"question": "how?"}]}, headers={"X-API-Key": KEY})
        assert ok.json() == {"predictions": [{"answer": "HOW?", "probability": 0.5}]}
        for bad, where in (
            ({"question": ""}, "inputs.0.question"),
            ({"question": "x", "top": 3}, "inputs.0.top"),
            ({"question": 7}, "inputs.0.question"),
            ({"question": "x" * 51}, "inputs.0.question"),
        ):
            r = httpx.post(srv.url + "/invocations", json={"inputs": [bad]}, headers={"X-API-Key": KEY})
            assert r.status_code == 400 and r.json()["error"]["message"].startswith(where + ":"), r.text
        spec = httpx.get(srv.url + "/openapi.json").json()
        assert spec["components"]["schemas"]["Question"]["properties"]["question"]["minLength"] == 1
        assert "Match" in spec["components"]["schemas"]


def test_untyped_model_goes_through_mlflow(uris, server_thread):
    with server_thread(create_app(uris["untyped"], auth=False)) as srv:
        r = httpx.post(srv.url + "/invocations", json={"inputs": ["ab", "abcd"]})
        assert r.status_code == 200 and r.json() == {"predictions": [2, 4]}
        r = httpx.post(srv.url + "/invocations", content=b"{oops")
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"

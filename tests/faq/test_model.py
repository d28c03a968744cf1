"""Train and register `faq@champion`, then answer questions through MLflow and over HTTP."""

from __future__ import annotations

import httpx
import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from refarch.faq.model import MAX_QUESTION_CHARS, FaqAnswer
from refarch.faq.split import split_by_original
from refarch.faq.train import model_uri, train_faq
from refarch.runtime.tracking import configure_mlflow

KEY = "faq-test-key-0123456789"


@pytest.fixture(scope="module")
def trained(config, small_faq, faq_settings):
    configure_mlflow(config, "faq-tests")
    settings = faq_settings(grid__C=[10.0], top_n=4, min_text=100, min_dupes=6)
    return train_faq(
        small_faq.originals, small_faq.duplicates, settings, config, dataset="generated", spark=None, promote=True
    )


@pytest.fixture(scope="module")
def model(trained, config):
    return mlflow.pyfunc.load_model(model_uri(config))


def test_registered_as_champion_with_metrics_logged(trained, config):
    version = MlflowClient().get_model_version_by_alias("faq", "champion")
    assert str(version.version) == trained.version
    run = mlflow.get_run(trained.run_id)
    assert run.data.metrics["acc_at_1"] == pytest.approx(trained.test.acc_at_1)
    assert run.data.metrics["n_originals"] == 25
    assert {"acc_at_3", "mean_rank", "valid_acc_at_1"} <= set(run.data.metrics)
    assert trained.test.acc_at_1 >= 0.8
    assert model_uri(config) == "models:/faq@champion"


def test_a_duplicate_finds_its_original_first(model, small_faq):
    _, test = split_by_original(small_faq.duplicates, test_size=0.21, seed=42)
    hits = 0
    for row in test.head(20).itertuples():
        (answer,) = model.predict([{"question": row.text, "top_n": 3}])
        assert isinstance(answer, FaqAnswer)
        assert len(answer.matches) == 3
        hits += answer.matches[0].id == row.original_id
    assert hits >= 16


def test_default_top_n_comes_from_the_settings_and_results_are_sorted(model, small_faq):
    (answer,) = model.predict([{"question": "  how do i sort an array in javascript?  "}])
    probs = [m.probability for m in answer.matches]
    assert len(probs) == 4
    assert probs == sorted(probs, reverse=True)
    known = dict(zip(small_faq.originals["id"], small_faq.originals["text"], strict=True))
    assert all(known[m.id] == m.text for m in answer.matches)


@pytest.mark.parametrize(
    "bad",
    [
        {"question": ""},
        {"question": "   \n "},
        {"question": "x" * (MAX_QUESTION_CHARS + 1)},
        {"question": "sort?", "top_n": 0},
        {"question": "sort?", "top_n": 51},
        {"question": "sort?", "k": 3},
        {"top_n": 3},
    ],
)
def test_bad_questions_are_rejected_before_the_model_runs(model, bad):
    with pytest.raises(MlflowException, match="Failed to validate"):
        model.predict([bad])


@pytest.fixture(scope="module")
def server(trained, config, server_thread):
    from refarch.serving.app import create_app
    from refarch.serving.auth import ApiKeys

    app = create_app(model_uri(config), api_keys=ApiKeys([KEY]))
    with server_thread(app) as srv:
        yield srv


def _ask(server, body, key=KEY):
    headers = {"X-API-Key": key} if key else {}
    return httpx.post(server.url + "/invocations", json=body, headers=headers, timeout=10)


def test_http_answers_with_sorted_matches(server, small_faq):
    original = small_faq.originals.iloc[0]
    r = _ask(server, {"inputs": [{"question": original["text"], "top_n": 2}]})
    assert r.status_code == 200, r.text
    (answer,) = r.json()["predictions"]
    assert [set(m) for m in answer["matches"]] == [{"id", "text", "probability"}] * 2
    assert answer["matches"][0]["id"] == original["id"]
    assert answer["matches"][0]["probability"] >= answer["matches"][1]["probability"]


@pytest.mark.parametrize(
    ("question", "field"),
    [("", "question"), ("   ", "question"), ("y" * (MAX_QUESTION_CHARS + 1), "question")],
)
def test_http_empty_or_over_long_question_is_a_400(server, question, field):
    r = _ask(server, {"inputs": [{"question": question}]})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"][0]["loc"] == ["inputs", 0, field]


def test_http_needs_the_key(server):
    assert _ask(server, {"inputs": [{"question": "sort an array"}]}, key=None).status_code == 401


@pytest.mark.slow
def test_the_registered_model_answers_without_refarch(model, config, tmp_path, python_without_refarch, small_faq):
    """Loaded from the registry by a Python that cannot import refarch (the model's own copy of the
    code), it answers what it answers here."""
    import json
    import textwrap

    question = str(small_faq.duplicates["text"].iloc[0])
    (expected,) = model.predict([{"question": question, "top_n": 2}])
    script = textwrap.dedent(
        f"""
        import json, mlflow
        model = mlflow.pyfunc.load_model({model_uri(config)!r})
        [answer] = model.predict([{{"question": {question!r}, "top_n": 2}}])
        import refarch
        print(json.dumps({{"refarch": refarch.__file__, "ids": [m.id for m in answer.matches]}}))
        """
    )
    env = python_without_refarch.registry_env()
    out = json.loads(python_without_refarch.last_line(script, cwd=tmp_path, env=env))
    assert "/code/refarch/" in out["refarch"]  # the model's copy, not this checkout
    assert out["ids"] == [m.id for m in expected.matches] and len(out["ids"]) == 2

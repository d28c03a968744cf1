"""The served FAQ model: an MLflow PythonModel with a typed input, so bad requests fail validation.

`{"question": "..."}` (optionally `top_n`) in; the top originals (id, text, probability),
most likely first, out. The pydantic types are the contract with the scoring app: an
empty (after stripping) or over-long question, or a top_n out of range, is rejected
before the model runs and becomes a 400 there.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import joblib
import mlflow
from pydantic import BaseModel, ConfigDict, Field

from refarch.faq.ranker import FaqRanker
from refarch.faq.settings import MAX_TOP_N

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 10_000
RANKER_ARTIFACT = "ranker"


class FaqQuery(BaseModel):
    """One question typed by a user."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="the user's question")
    top_n: int | None = Field(None, ge=1, le=MAX_TOP_N, description="how many originals to return")


class FaqMatch(BaseModel):
    id: int = Field(description="id of the original question")
    text: str = Field(description="cleaned text of the original question")
    probability: float = Field(ge=0.0, le=1.0)


class FaqAnswer(BaseModel):
    matches: list[FaqMatch]


class FaqModel(mlflow.pyfunc.PythonModel):
    """Ranks all known originals for each question with the fitted `FaqRanker` artifact.

    A request without `top_n` gets the model's `top_n` (its model_config, from conf/faq.yml at training).
    """

    def __init__(self) -> None:
        self.ranker: FaqRanker | None = None
        self.default_top_n: int | None = None

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.ranker = joblib.load(context.artifacts[RANKER_ARTIFACT])
        config = context.model_config or {}
        if "top_n" not in config:
            raise RuntimeError("the FAQ model was saved without model_config top_n")
        self.default_top_n = int(config["top_n"])

    def predict(self, model_input: list[FaqQuery], params: dict[str, Any] | None = None) -> list[FaqAnswer]:
        if self.ranker is None or self.default_top_n is None:
            raise RuntimeError("the model context was not loaded")
        answers = []
        for query in model_input:
            top = self.ranker.top(query.question, query.top_n or self.default_top_n)
            answers.append(FaqAnswer(matches=[FaqMatch(id=i, text=t, probability=p) for i, t, p in top]))
        return answers


def pip_requirements() -> list[str]:
    """Pinned to the training environment: the pickled pipeline needs the same scikit-learn."""
    from refarch.runtime.tracking import pinned_requirements

    return pinned_requirements("scikit-learn", "pandas", "numpy", "pydantic", "joblib")


def _model_arguments(ranker: FaqRanker, folder: Path, top_n: int) -> dict[str, Any]:
    from refarch.runtime.tracking import model_code_paths

    if ranker.originals is None:
        raise RuntimeError("fit the ranker before saving it")
    path = folder / "ranker.joblib"
    joblib.dump(ranker, path)
    example_question = str(ranker.originals["text"].iloc[0])[:300]
    return {
        "python_model": FaqModel(),
        "artifacts": {RANKER_ARTIFACT: str(path)},
        "input_example": [{"question": example_question, "top_n": 3}],
        "model_config": {"top_n": top_n},
        "pip_requirements": pip_requirements(),
        # the ranker and the model class are pickled from refarch: the model carries that code, so
        # Model Serving and `mlflow models serve` load it where refarch is not installed
        "code_paths": model_code_paths(),
    }


def log_faq_model(ranker: FaqRanker, *, top_n: int, name: str = "model") -> mlflow.models.model.ModelInfo:
    """Log the ranker as a pyfunc model in the active run; the example question drives the signature.

    `top_n` is how many originals a request without one gets (settings.top_n).
    """
    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.pyfunc.log_model(name=name, **_model_arguments(ranker, Path(tmp), top_n))


def save_faq_model(ranker: FaqRanker, path: Path, *, top_n: int) -> Path:
    """Save the pyfunc model to a folder (no tracking server): for benchmarks and containers."""
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.pyfunc.save_model(str(path), **_model_arguments(ranker, Path(tmp), top_n))
    return path

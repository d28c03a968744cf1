"""Load a pyfunc model and derive, from its `predict` type hints, how to validate and answer requests.

A refarch model declares `predict(self, model_input: list[SomeInput], params=None) -> list[SomeOutput]`
with pydantic models. The app validates `{"inputs": [...]}` against `SomeInput` (unknown fields
forbidden, strict JSON types, its field constraints), calls the model's own predict without
MLflow's second validation pass, and serialises `SomeOutput` with pydantic-core. Models
without such hints still work through `PyFuncModel.predict`, with MLflow's checks.

JSON types are strict (`"1"` is not an integer), except that a number with no fractional part
(`0.0`) is an integer, as JSON Schema and the OpenAPI document say.

A model whose predict reads a store over the network may also define
`async def predict_async(self, model_input, timeout)` and `async def check_ready_async(self, timeout)`:
the app then awaits them on its event loop, and they must give up after `timeout` seconds
with an error whose `http_status` is 503 (the recommender's `StoreError`).
"""

from __future__ import annotations

import inspect
import json
import logging
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import from_json

from refarch.serving.batching import DEFAULT_MAX_WAIT_MS, DynamicBatcher
from refarch.serving.errors import ApiError, from_validation_error

log = logging.getLogger(__name__)

DEFAULT_MAX_INPUTS = 100


@dataclass
class ServedModel:
    """A loaded model plus what the app needs to call it."""

    uri: str
    name: str
    pyfunc: Any
    input_model: type[BaseModel] | None
    output_type: Any
    request_model: type[BaseModel]
    parse: Callable[[bytes], list[Any]]
    predict: Callable[[list[Any]], Any]
    serialize: Callable[[Any], bytes]
    ready_check: Callable[[], None] | None
    predict_async: Callable[[list[Any], float], Awaitable[Any]] | None = None
    ready_check_async: Callable[[float], Awaitable[None]] | None = None
    threadpool: bool = False  # the model's predict blocks (an R call): run it off the event loop
    batcher: DynamicBatcher | None = None  # set when concurrent requests share model calls


def _strict_copy(model: type[BaseModel]) -> type[BaseModel]:
    """The same input model with unknown fields forbidden (a typo must not pass silently)."""
    if model.model_config.get("extra") == "forbid":
        return model
    config = ConfigDict(**{**model.model_config, "extra": "forbid"})
    return type(model.__name__, (model,), {"model_config": config, "__module__": model.__module__})


def _input_output_hints(python_model: Any) -> tuple[Any, Any, Callable[..., Any], bool]:
    predict = type(python_model).predict
    raw = inspect.unwrap(predict)  # MLflow wraps predict to validate again; we validate once
    try:
        hints = typing.get_type_hints(raw)
    except Exception:  # unresolvable annotations: treat as untyped
        hints = {}
    params = [p for p in inspect.signature(raw).parameters if p != "self"]
    takes_context = bool(params) and params[0] == "context"
    return hints.get("model_input"), hints.get("return"), raw, takes_context


def _list_of_model(hint: Any) -> type[BaseModel] | None:
    if typing.get_origin(hint) is list:
        (arg,) = typing.get_args(hint) or (None,)
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _generic_json(result: Any) -> bytes:
    from mlflow.pyfunc.scoring_server import _get_jsonable_obj
    from mlflow.utils.proto_json_utils import NumpyEncoder

    return json.dumps({"predictions": _get_jsonable_obj(result, pandas_orient="records")}, cls=NumpyEncoder).encode()


def _local_artifact_root() -> Path | None:
    """This process' local MLflow artifact root (`{home}/mlartifacts` on the local target), if any."""
    try:
        from refarch.runtime.config import load_config

        root = load_config().target.mlflow.artifact_root
    except Exception:  # no project here (a container), or a target without a local artifact root
        return None
    return Path(root).resolve() if root else None


def files_under_this_home(model_uri: str) -> str:
    """A `models:/` URI of the local registry as the model's folder under this refarch home.

    MLflow records absolute artifact locations: after $REFARCH_HOME is copied or moved they
    still name the old home, so a copy would load (or fail to find) the original's files. A
    model whose files lie under another home's artifact root is loaded from the same place
    under this home's root instead, when it is there.
    """
    root = _local_artifact_root() if model_uri.startswith("models:/") else None
    if root is None:
        return model_uri
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    recorded = ModelsArtifactRepository.get_underlying_uri(model_uri)
    if not recorded.startswith("file:"):
        return model_uri
    path = Path(url2pathname(urlparse(recorded).path))
    if path.is_relative_to(root) or root.name not in path.parts:
        return model_uri
    tail = path.parts[len(path.parts) - path.parts[::-1].index(root.name) :]
    here = root.joinpath(*tail)
    if not here.is_dir():
        return model_uri
    log.info("model %s: files recorded under another home (%s), loading them from %s", model_uri, path, here)
    return str(here)


def load_served_model(
    model_uri: str,
    max_inputs: int = DEFAULT_MAX_INPUTS,
    max_batch: int = 1,
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
) -> ServedModel:
    """Load the model (registry aliases, runs and local paths all work) and build its request model."""
    import mlflow

    pyfunc = mlflow.pyfunc.load_model(files_under_this_home(model_uri))
    name = model_uri.rstrip("/").split("/")[-1].split("@")[0] or "model"
    try:
        python_model = pyfunc.unwrap_python_model()
    except Exception:
        python_model = None
    input_hint = output_hint = None
    input_model = None
    if python_model is not None:
        input_hint, output_hint, raw_predict, takes_context = _input_output_hints(python_model)
        input_model = _list_of_model(input_hint)
        # a model whose input type is generated when it loads (refarch.rmodel: from its declared columns)
        generated = getattr(python_model, "input_model", None)
        if input_model is None and isinstance(generated, type) and issubclass(generated, BaseModel):
            input_model, output_hint = generated, getattr(python_model, "output_type", output_hint)
    if input_model is not None:
        item = _strict_copy(input_model)
        context = getattr(getattr(pyfunc, "_model_impl", None), "context", None)

        def predict(inputs: list[Any]) -> Any:
            if takes_context:
                return raw_predict(python_model, context, inputs)
            return raw_predict(python_model, inputs)

        inputs_type: Any = list[item]  # type: ignore[valid-type]
    else:
        log.info("model %s has no list[pydantic] input hint: validating through MLflow", model_uri)

        def predict(inputs: list[Any]) -> Any:
            from mlflow.exceptions import MlflowException

            try:
                return pyfunc.predict(inputs)
            except MlflowException as err:
                if err.error_code == "INVALID_PARAMETER_VALUE":
                    raise ApiError(400, "invalid_request", err.message.split("\n")[0]) from None
                raise

        inputs_type = list[Any]

    request_model = create_model(
        "InvocationRequest",
        __config__=ConfigDict(extra="forbid"),
        inputs=(
            inputs_type,
            Field(min_length=1, max_length=max_inputs, description=f"1 to {max_inputs} inputs, scored in one call"),
        ),
    )
    adapter = TypeAdapter(request_model)

    def parse(body: bytes) -> list[Any]:
        try:
            return adapter.validate_json(body, strict=True).inputs
        except ValidationError as err:
            fixed = _integral_floats_as_ints(body, err)
            if fixed is None:
                raise from_validation_error(err) from None
        try:  # only on the error path: integers written as 1.0
            return adapter.validate_json(fixed, strict=True).inputs
        except ValidationError as err:
            raise from_validation_error(err) from None

    output_adapter = TypeAdapter(output_hint) if output_hint is not None and input_model is not None else None

    def serialize(result: Any) -> bytes:
        if output_adapter is not None:
            try:
                return b'{"predictions":' + output_adapter.dump_json(result, warnings=False) + b"}"
            except Exception:  # the model returned something else than it declared
                log.debug("output does not match the declared type; generic JSON", exc_info=True)
        return _generic_json(result)

    ready = getattr(python_model, "check_ready", None) if python_model is not None else None
    predict_async = getattr(python_model, "predict_async", None) if input_model is not None else None
    ready_async = getattr(python_model, "check_ready_async", None) if python_model is not None else None
    batcher = None
    if max_batch > 1 and input_model is not None:  # typed models answer a list, one result per input
        batcher = DynamicBatcher(predict, max_batch=max_batch, max_wait_ms=max_wait_ms, name=name)
    elif max_batch > 1:
        log.warning("model %s has no list[pydantic] input hint: served without dynamic batching", model_uri)
    return ServedModel(
        uri=model_uri,
        name=name,
        pyfunc=pyfunc,
        input_model=input_model,
        output_type=output_hint,
        request_model=request_model,
        parse=parse,
        predict=predict,
        serialize=serialize,
        ready_check=ready if callable(ready) else None,
        predict_async=predict_async if inspect.iscoroutinefunction(predict_async) else None,
        ready_check_async=ready_async if inspect.iscoroutinefunction(ready_async) else None,
        threadpool=bool(getattr(python_model, "predict_in_threadpool", False)),
        batcher=batcher,
    )


def _integral_floats_as_ints(body: bytes, err: ValidationError) -> bytes | None:
    """The body with each integer-valued float that strict mode refused as an int written as an int.

    None when no error is of that kind (or the body cannot be walked along the error's path):
    the first error stands.
    """
    spots = [
        e["loc"]
        for e in err.errors(include_url=False)
        if e["type"] == "int_type" and isinstance(e.get("input"), float) and e["input"].is_integer()
    ]
    if not spots:
        return None
    data = from_json(body)
    for loc in spots:
        parent: Any = data
        try:
            for part in loc[:-1]:
                parent = parent[part]
            parent[loc[-1]] = int(parent[loc[-1]])
        except (KeyError, IndexError, TypeError):
            return None
    return json.dumps(data).encode()

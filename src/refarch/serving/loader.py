"""Load a pyfunc model and derive, from its `predict` type hints, how to validate and answer requests.

A refarch model declares `predict(self, model_input: list[SomeInput], params=None) -> list[SomeOutput]`
with pydantic models. The app validates `{"inputs": [...]}` against `SomeInput` (unknown fields
forbidden, strict JSON types, its field constraints), calls the model's own predict without
MLflow's second validation pass, and serialises `SomeOutput` with pydantic-core. Models
without such hints still work through `PyFuncModel.predict`, with MLflow's checks.
"""

from __future__ import annotations

import inspect
import json
import logging
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from refarch.serving.errors import ApiError, from_validation_error

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 100


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
    threadpool: bool = False  # the model's predict blocks (an R call): run it off the event loop

    def response_schema_type(self) -> Any:
        return self.output_type


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


def load_served_model(model_uri: str, max_batch: int = DEFAULT_MAX_BATCH) -> ServedModel:
    """Load the model (registry aliases, runs and local paths all work) and build its request model."""
    import mlflow

    pyfunc = mlflow.pyfunc.load_model(model_uri)
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
            Field(min_length=1, max_length=max_batch, description=f"1 to {max_batch} inputs, scored in one call"),
        ),
    )
    adapter = TypeAdapter(request_model)

    def parse(body: bytes) -> list[Any]:
        try:
            return adapter.validate_json(body, strict=True).inputs
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
        threadpool=bool(getattr(python_model, "predict_in_threadpool", False)),
    )

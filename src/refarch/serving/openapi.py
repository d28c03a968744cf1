"""The OpenAPI document: FastAPI's routes, plus `POST /invocations` described from the model's own types.

`/invocations` is answered by `InvocationsHandler` before FastAPI routes anything, so it is
not a FastAPI route; its operation is written here, and its request and response bodies are
filled in from the model's pydantic types once the model is loaded.
"""

from __future__ import annotations

from typing import Any

from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field, create_model

from refarch.serving.loader import ServedModel
from refarch.serving.settings import ServeSettings

REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable reason, e.g. invalid_json, invalid_request, unauthorized")
    message: str
    details: list[dict[str, Any]] | None = Field(None, description="one entry per bad field: loc, message, type")


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorResponse")}}},
    }


_SCHEMES = {"key": ["ApiKey"], "jwt": ["EntraId"], "key-or-jwt": ["ApiKey", "EntraId"]}
_UNAUTHORIZED = {
    "key": "missing or invalid API key",
    "jwt": "missing, malformed, expired or otherwise invalid bearer token",
    "key-or-jwt": "missing or invalid API key or bearer token",
}


def invocations_operation(settings: ServeSettings, auth: bool) -> dict[str, Any]:
    """`POST /invocations` before the model is known: its errors, and its key or token if auth is on."""
    retry_after = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
    operation: dict[str, Any] = {
        "summary": "score a batch of inputs",
        "operationId": "invocations",
        "responses": {
            "200": {"description": "one prediction per input, in order"},
            "400": _error("bad JSON, wrong types, unknown fields, values out of range"),
            "401": _error(_UNAUTHORIZED[settings.auth] if auth else "never (served without auth)"),
            "405": _error("any method but POST"),
            "408": _error(
                f"headers not in within {settings.limits.head_timeout_s:g} s, "
                f"or body within {settings.limits.body_timeout_s:g} s"
            ),
            "413": _error(f"body over {settings.max_body_bytes} bytes"),
            "431": _error(
                f"request line and headers over {settings.limits.max_header_bytes} bytes, "
                f"or more than {settings.limits.max_headers} headers"
            ),
            "503": {**_error("model not loaded yet, or its store unavailable"), "headers": retry_after},
        },
    }
    if auth:
        operation["security"] = [{name: []} for name in _SCHEMES[settings.auth]]  # any one of them
        if settings.auth != "key":
            operation["responses"]["403"] = _error("a valid token without the required scope or app role")
    return operation


def build_openapi(app: Any, model: ServedModel | None, settings: ServeSettings, auth: bool) -> dict[str, Any]:
    """The whole document; with `model`, the request and response bodies of /invocations too."""
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemes = components.setdefault("securitySchemes", {})
    if settings.auth != "jwt":
        schemes["ApiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    if settings.auth != "key":
        schemes["EntraId"] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": f"an Entra ID access token issued by {settings.jwt.issuer} for {settings.jwt.audience}",
        }
    schemas = components.setdefault("schemas", {})
    errors = ErrorResponse.model_json_schema(ref_template=REF)
    schemas.update(errors.pop("$defs", {}))
    schemas["ErrorResponse"] = errors
    post = invocations_operation(settings, auth)
    schema.setdefault("paths", {})["/invocations"] = {"post": post}
    if model is not None:
        _add_model_schemas(schemas, post, model)
    return schema


def _add_model_schemas(schemas: dict[str, Any], post: dict[str, Any], model: ServedModel) -> None:
    """Request and response bodies of /invocations from the model's pydantic types."""
    request = model.request_model.model_json_schema(ref_template=REF)
    schemas.update(request.pop("$defs", {}))
    schemas["InvocationRequest"] = request
    post["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="InvocationRequest")}}},
    }
    if model.output_type is not None:
        response_model = create_model("InvocationResponse", predictions=(model.output_type, ...))
        response = response_model.model_json_schema(ref_template=REF, mode="serialization")
        schemas.update(response.pop("$defs", {}))
        schemas["InvocationResponse"] = response
        post["responses"]["200"] = {
            "description": "one prediction per input, in order",
            "content": {"application/json": {"schema": {"$ref": REF.format(model="InvocationResponse")}}},
        }

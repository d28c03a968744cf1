"""One JSON error shape for every 4xx/5xx: `{"error": {"code", "message", "details"?}}`."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.responses import Response


class ApiError(Exception):
    """An error the client should see as is (status, code, message)."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return Response(json.dumps({"error": body}), status_code=status, media_type="application/json", headers=headers)


MAX_DETAILS = 20
MAX_NAME = 64


def _short(part: str | int) -> str | int:
    """A field name as the client sent it, cut short: an unknown 500 KB key is not echoed back."""
    if isinstance(part, str) and len(part) > MAX_NAME:
        return part[:MAX_NAME] + f"...({len(part)} characters)"
    return part


def from_validation_error(err: ValidationError) -> ApiError:
    """A 400 naming each bad field (`inputs.0.k`), without echoing the input back.

    At most MAX_DETAILS entries, and field names over MAX_NAME characters are cut. An input type's
    own check may say a value is too large with the error context `http_status: 413` (an image over
    the model's pixel limit): when that is the first error, the answer is a 413.
    """
    errors = err.errors(include_url=False, include_input=False)
    details = [
        {"loc": [_short(p) for p in e["loc"]], "message": e["msg"], "type": e["type"]} for e in errors[:MAX_DETAILS]
    ]
    if details and details[0]["type"] == "json_invalid":
        return ApiError(400, "invalid_json", f"request body is not valid JSON: {details[0]['message']}")
    if details and details[0]["type"] in ("model_type", "model_attributes_type") and details[0]["loc"] == []:
        return ApiError(400, "invalid_request", 'request body must be a JSON object like {"inputs": [...]}')
    first = details[0] if details else {"loc": [], "message": "invalid request"}
    where = ".".join(str(p) for p in first["loc"]) or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    too_large = bool(errors) and (errors[0].get("ctx") or {}).get("http_status") == 413
    status, code = (413, "too_large") if too_large else (400, "invalid_request")
    return ApiError(status, code, f"{where}: {first['message']}{more}", details)

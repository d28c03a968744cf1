"""Logging of the scoring app: one JSON line per record, with time, level and request id, and no secrets.

`log_config()` is what `refarch serve` gives uvicorn, which applies it in every worker process
(so the app's own lines, "model loaded" or a rejected key, reach the log with the access
lines). The request id comes from the ingress' `X-Request-ID` when it sends a sane one, else
it is made here; it is answered in `X-Request-ID` and carried by every line logged while the
request is handled. Query strings never reach the access log: each value is replaced, and so
is the value of any field or parameter whose name looks like a key or a token.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote, unquote

REQUEST_ID: ContextVar[str | None] = ContextVar("refarch_request_id", default=None)
REDACTED = "[redacted]"

_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_PREFIX = os.urandom(4).hex()
_COUNTER = itertools.count(1)
_SECRET_NAME = re.compile(r"key|token|secret|passw|auth|signature|credential|session|cookie", re.I)
_PLAIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,31}")
_PATH_PARAM = re.compile(r"([;/][^;/=?]*=)[^;/?]*")
# attributes every LogRecord has: anything else was passed in `extra`
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def request_id(given: str | None) -> str:
    """The caller's id when it is short and plain (the ingress sends one), else a new one."""
    if given and _SANE_ID.fullmatch(given):
        return given
    return f"{_PREFIX}-{next(_COUNTER):x}"


def redact_target(target: str) -> str:
    """A request target fit for a log: every query value replaced, and `name=value` path parameters too.

    uvicorn logs the path percent-encoded (`;` as `%3B`): it is decoded, redacted and encoded again.
    """
    path, sep, query = target.partition("?")
    decoded = unquote(path)
    if "=" in decoded:
        path = quote(_PATH_PARAM.sub(lambda m: m.group(1) + REDACTED, decoded), safe="/[]")
    if not sep:
        return path
    parts = []
    for part in query.split("&")[:20]:
        name = part.split("=", 1)[0]
        parts.append(f"{name}={REDACTED}" if _PLAIN_NAME.fullmatch(name) else REDACTED)
    return f"{path}?{'&'.join(parts)}"


class RedactAccessLog(logging.Filter):
    """uvicorn's access records carry (client, method, target, http version, status): redact the target."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_target(args[2]), args[3], args[4])
        return True


def install_access_redaction() -> None:
    """Redact uvicorn's access log whatever logging configuration the process runs with (idempotent)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactAccessLog) for f in access.filters):
        access.addFilter(RedactAccessLog())


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "request_id", ...}` on one line; secret-looking fields redacted."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = REQUEST_ID.get()
        if rid is not None:
            line["request_id"] = rid
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, target, _, status = record.args
            line.update(client=client, method=method, path=target, status=status)
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in line:
                line[name] = REDACTED if _SECRET_NAME.search(name) else value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """The `logging.config.dictConfig` for uvicorn: JSON lines on stderr for uvicorn's loggers and refarch's."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["stderr"], "level": level, "propagate": False},
            "refarch": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


_logged: set[str] = set()


def log_once(logger: logging.Logger, key: str, message: str, *args: Any) -> None:
    """A warning the first time `key` happens in this process; silence after (a limit hit under attack repeats)."""
    if key not in _logged:
        _logged.add(key)
        logger.warning(message + " (logged once per worker)", *args)

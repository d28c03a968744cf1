"""`refarch serve --model models:/recommender@champion`: the scoring app under uvicorn.

Settings reach the worker processes through the environment (uvicorn starts workers by
importing a factory), so the same image runs with `--workers 1` or `--workers 4`. Every
field of `ServeSettings` has a flag (`--max-connections`, `--store-timeout-ms`, ...) whose
default is the field's.

uvicorn's own limits are used where it has them (keep-alive timeout, listen backlog); the
ones it lacks (connection cap, head and body timeouts, header caps) come from
`refarch.serving.protocol`, built on uvicorn's httptools protocol.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from refarch.serving.auth import KEY_FILE_ENV, KEYS_ENV, ApiKeys
from refarch.serving.logs import log_config
from refarch.serving.metrics import MULTIPROC_ENV
from refarch.serving.settings import SETTINGS_ENV, ConnectionLimits, JwtSettings, ServeSettings, StoreGuard

log = logging.getLogger(__name__)

# (section of ServeSettings, its model, flag prefix)
_SECTIONS: tuple[tuple[str | None, type[BaseModel], str], ...] = (
    (None, ServeSettings, ""),
    ("limits", ConnectionLimits, ""),
    ("store", StoreGuard, "store-"),
    ("jwt", JwtSettings, "jwt-"),
)
_OPTIONAL_STR = typing.Optional[str]  # noqa: UP045 - the annotation pydantic keeps for `str | None`


def _flags() -> list[tuple[str | None, str, str, Any]]:
    """(section, field, flag, FieldInfo) for every plain field (number, bool, text, choice) of ServeSettings."""
    out = []
    for section, model, prefix in _SECTIONS:
        for name, info in model.model_fields.items():
            plain = info.annotation in (int, float, bool, _OPTIONAL_STR)
            if plain or typing.get_origin(info.annotation) is typing.Literal:
                out.append((section, name, f"--{prefix}{name}".replace("_", "-"), info))
    return out


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model URI: models:/name@alias, runs:/id/path or a folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="uvicorn worker processes (default: one per core for a model that asks for it, e.g. R; else 1)",
    )
    parser.add_argument("--api-key-env", default=KEYS_ENV, help="environment variable holding the keys")
    parser.add_argument("--api-key-file", default=None, help=f"mounted secret file, one key per line (${KEY_FILE_ENV})")
    parser.add_argument("--no-auth", action="store_true", help="serve without API keys (local experiments only)")
    parser.add_argument("--no-access-log", action="store_true", help="no per-request log lines (they never hold keys)")
    parser.add_argument("--target", default=None, help="refarch target whose MLflow registry to use")
    for _, _, flag, info in _flags():
        if info.annotation is bool:
            parser.add_argument(flag, dest=_dest(flag), action="store_true", help=info.description)
        elif typing.get_origin(info.annotation) is typing.Literal:
            choices = typing.get_args(info.annotation)
            parser.add_argument(flag, dest=_dest(flag), choices=choices, default=info.default, help=info.description)
        elif info.annotation == _OPTIONAL_STR:
            parser.add_argument(flag, dest=_dest(flag), default=info.default, help=info.description)
        else:
            help_text = f"{info.description} (default {info.default})"
            parser.add_argument(flag, dest=_dest(flag), type=info.annotation, default=info.default, help=help_text)


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    """ServeSettings from the flags; an out-of-range value is a ValueError naming its flag."""
    values: dict[str, Any] = {"limits": {}, "store": {}, "jwt": {}}
    flags = {}
    for section, name, flag, _ in _flags():
        (values if section is None else values[section])[name] = getattr(args, _dest(flag))
        flags[(section, name)] = flag
    try:
        return ServeSettings.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        loc = first["loc"]
        if not loc:  # a check across fields (--auth jwt without its settings): the message names the flags
            raise ValueError(str(first["msg"]).removeprefix("Value error, ")) from None
        flag = flags.get((loc[0], loc[1]) if len(loc) == 2 else (None, loc[0]), ".".join(map(str, loc)))
        raise ValueError(f"{flag}: {first['msg']}") from None


def uvicorn_options(settings: ServeSettings, *, access_log: bool = True, in_process: bool = False) -> dict[str, Any]:
    """uvicorn keywords for the scoring app: its protocol with the limits, keep-alive, logging, headers.

    `in_process`: the protocol class carries the limits itself (one process, e.g. tests); else
    the workers read them from $REFARCH_SERVE_SETTINGS.
    """
    from refarch.serving.protocol import LimitedHttpToolsProtocol

    protocol = (
        LimitedHttpToolsProtocol.with_limits(settings.limits)
        if in_process
        else f"{LimitedHttpToolsProtocol.__module__}:{LimitedHttpToolsProtocol.__name__}"
    )
    return {
        "http": protocol,
        "ws": "none",
        "timeout_keep_alive": settings.limits.keep_alive_s,
        "backlog": 4096,
        "log_config": log_config(),
        "access_log": access_log,
        "proxy_headers": True,
        "server_header": False,
    }


def _configure_mlflow(target: str | None) -> None:
    """Use $MLFLOW_TRACKING_URI if set, else the target's registry (local: the SQLite file)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return
    from refarch.runtime.config import load_config
    from refarch.runtime.paths import ProjectNotFound

    try:
        config = load_config(target=target)
    except ProjectNotFound:
        return  # a container with a model folder needs no registry
    os.environ["MLFLOW_TRACKING_URI"] = config.target.mlflow.tracking_uri
    os.environ.setdefault("MLFLOW_REGISTRY_URI", config.target.mlflow.registry_uri)


def _check(args: argparse.Namespace) -> ServeSettings:
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, not {args.workers}")
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be 1-65535, not {args.port}")
    if args.no_auth and args.auth != "key":
        raise ValueError(f"--no-auth and --auth {args.auth} contradict each other")
    settings = settings_from_args(args)
    if not args.no_auth and settings.auth != "jwt":
        ApiKeys.from_env(args.api_key_env, file=args.api_key_file)  # fail now, not in every worker
    return settings


def run(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _check(args)
    _configure_mlflow(args.target)
    if args.workers is None:
        from refarch.serving.workers import default_workers

        args.workers = default_workers(args.model)
    env = {
        "REFARCH_SERVE_MODEL_URI": args.model,
        "REFARCH_SERVE_AUTH": "0" if args.no_auth else "1",
        "REFARCH_SERVE_KEYS_ENV": args.api_key_env,
        SETTINGS_ENV: settings.model_dump_json(),
    }
    if args.api_key_file:
        env[KEY_FILE_ENV] = args.api_key_file
    os.environ.update(env)
    metrics_dir = None
    if args.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        metrics_dir = tempfile.mkdtemp(prefix="refarch-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir
    elif os.environ.get(MULTIPROC_ENV):  # stale samples from an earlier run would be summed in
        folder = Path(os.environ[MULTIPROC_ENV])
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
    log.info(
        "serving %s on %s:%d with %d worker(s)%s",
        args.model,
        args.host,
        args.port,
        args.workers,
        f", auth: {settings.auth}" if not args.no_auth else " WITHOUT auth",
    )
    try:
        uvicorn.run(
            "refarch.serving.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            **uvicorn_options(settings, access_log=not args.no_access_log),
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0

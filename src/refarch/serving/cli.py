"""`refarch serve --model models:/recommender@champion`: the scoring app under uvicorn.

Settings reach the worker processes through the environment (uvicorn starts workers by
importing a factory), so the same image runs with `--workers 1` or `--workers 4`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path

from refarch.serving.app import DEFAULT_MAX_BODY_BYTES
from refarch.serving.auth import KEY_FILE_ENV, KEYS_ENV, ApiKeys
from refarch.serving.loader import DEFAULT_MAX_BATCH
from refarch.serving.metrics import MULTIPROC_ENV

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model URI: models:/name@alias, runs:/id/path or a folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="uvicorn worker processes (default: one per core for an R model, else 1)",
    )
    parser.add_argument("--api-key-env", default=KEYS_ENV, help="environment variable holding the keys")
    parser.add_argument("--api-key-file", default=None, help=f"mounted secret file, one key per line (${KEY_FILE_ENV})")
    parser.add_argument("--no-auth", action="store_true", help="serve without API keys (local experiments only)")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="most inputs per request")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--threadpool", action="store_true", help="run predict in a thread pool (slow models)")
    parser.add_argument("--no-access-log", action="store_true", help="no per-request log lines (they never hold keys)")
    parser.add_argument("--target", default=None, help="refarch target whose MLflow registry to use")


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


def _check(args: argparse.Namespace) -> None:
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, not {args.workers}")
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be 1-65535, not {args.port}")
    if args.max_batch < 1:
        raise ValueError(f"--max-batch must be at least 1, not {args.max_batch}")
    if not args.no_auth:
        ApiKeys.from_env(args.api_key_env, file=args.api_key_file)  # fail now, not in every worker


def run(args: argparse.Namespace) -> int:
    import uvicorn

    _check(args)
    _configure_mlflow(args.target)
    if args.workers is None:  # an R model: one embedded R per worker process, one per core
        from refarch.rmodel.model import default_workers

        args.workers = default_workers(args.model) or 1
    env = {
        "REFARCH_SERVE_MODEL_URI": args.model,
        "REFARCH_SERVE_AUTH": "0" if args.no_auth else "1",
        "REFARCH_SERVE_KEYS_ENV": args.api_key_env,
        "REFARCH_SERVE_MAX_BATCH": str(args.max_batch),
        "REFARCH_SERVE_MAX_BODY_BYTES": str(args.max_body_bytes),
        "REFARCH_SERVE_THREADPOOL": "1" if args.threadpool else "0",
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
        "" if not args.no_auth else " WITHOUT API keys",
    )
    try:
        uvicorn.run(
            "refarch.serving.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            access_log=not args.no_access_log,
            backlog=4096,
            timeout_keep_alive=30,
            proxy_headers=True,
            server_header=False,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0

"""How many worker processes a model wants when `--workers` is not given.

A model that runs a single-threaded interpreter in-process (R through rpy2) serves one request at
a time per process, so it asks for one worker per core in its MLflow metadata:
`{"refarch_serve_workers": "per_core"}`. Everything else gets one worker, uvicorn's own default.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

WORKERS_KEY = "refarch_serve_workers"
PER_CORE = "per_core"


def cpu_count() -> int:
    """Cores this process may use (its affinity mask, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(model_uri: str) -> int:
    """One per core for a model whose metadata asks for it, else 1. Reads only the MLmodel file."""
    from mlflow.models import get_model_info

    try:
        metadata = get_model_info(model_uri).metadata or {}
    except Exception as err:  # the server reports a model it cannot load itself, with the full error
        log.debug("no model metadata for %s: %s", model_uri, err)
        return 1
    return cpu_count() if metadata.get(WORKERS_KEY) == PER_CORE else 1

"""Where the project lives and where local state goes.

The bundle root is found by walking up to `databricks.yml`, so notebooks run from
their own folder (as on Databricks) still find `conf/` and `jobs/`.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "REFARCH_ROOT"
HOME_ENV = "REFARCH_HOME"


class ProjectNotFound(RuntimeError):
    """No bundle root (a folder with databricks.yml) above the working directory."""


def project_root(start: Path | None = None) -> Path:
    """The bundle root: $REFARCH_ROOT, else the nearest folder above `start` with databricks.yml."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "databricks.yml").is_file():
            return folder
    raise ProjectNotFound(f"no databricks.yml in {here} or any folder above it; set {ROOT_ENV} to the bundle root")


def local_home(root: Path | None = None) -> Path:
    """Local state (warehouse, MLflow db, caches): $REFARCH_HOME, else `<root>/.refarch`."""
    env = os.environ.get(HOME_ENV)
    path = Path(env) if env else (root or project_root()) / ".refarch"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()

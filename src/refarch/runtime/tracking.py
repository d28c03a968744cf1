"""MLflow set-up per target: SQLite tracking and registry locally, the workspace and Unity Catalog on Databricks."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from refarch.runtime.config import Config

log = logging.getLogger(__name__)


def configure_mlflow(config: Config, experiment: str) -> str:
    """Point MLflow at the target's tracking server and registry; return the experiment id."""
    import mlflow

    m = config.target.mlflow
    if m.dfs_tmp:  # Spark-flavour models stage through here; on Databricks a volume, not the DBFS root
        os.environ.setdefault("MLFLOW_DFS_TMP", m.dfs_tmp)
    mlflow.set_tracking_uri(m.tracking_uri)
    mlflow.set_registry_uri(m.registry_uri)
    name = f"{m.experiment_prefix}{experiment}"
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        exp_id = found.experiment_id
    else:
        location = None
        if m.artifact_root:
            root = Path(m.artifact_root)
            root.mkdir(parents=True, exist_ok=True)
            location = (root / experiment).as_uri()
        exp_id = mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(experiment_id=exp_id)
    log.info("MLflow experiment %s (%s)", name, m.tracking_uri)
    return exp_id


def model_code_paths() -> list[str]:
    """The refarch package for `log_model(code_paths=...)`: a registered model then loads where refarch
    is not installed (Model Serving, `mlflow models serve`, `spark_udf(env_manager=...)`).

    A copy without caches and without the bundle schema (a developer tool of 900 KB) is logged.
    """
    import refarch

    source = Path(refarch.__file__).resolve().parent
    target = Path(tempfile.mkdtemp(prefix="refarch-code-")) / "refarch"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "schema"))
    return [str(target)]


def pinned_requirements(*distributions: str) -> list[str]:
    """`name==version` of each distribution as installed here: the model runs with what it was trained with.

    MLflow is pinned as the distribution present (`mlflow` locally, `mlflow-skinny` on Databricks ML
    runtimes), so serving installs the same build the model was logged with.
    """
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in ("mlflow", *distributions):
        if name == "mlflow":
            try:
                pins.append(f"mlflow=={version('mlflow')}")
            except PackageNotFoundError:
                pins.append(f"mlflow-skinny=={version('mlflow-skinny')}")
            continue
        pins.append(f"{name}=={version(name)}")
    return pins


def registered_model_name(config: Config, model: str) -> str:
    """Unity Catalog wants `catalog.schema.model`; the local SQLite registry takes the bare name."""
    t = config.target
    if t.mlflow.registry_uri.startswith("databricks-uc"):
        return f"{t.catalog}.{t.schema_name}.{model}"
    return model

"""MLflow set-up per target: SQLite tracking and registry locally, the workspace and Unity Catalog on Databricks."""

from __future__ import annotations

import logging
import os
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


def registered_model_name(config: Config, model: str) -> str:
    """Unity Catalog wants `catalog.schema.model`; the local SQLite registry takes the bare name."""
    t = config.target
    if t.mlflow.registry_uri.startswith("databricks-uc"):
        return f"{t.catalog}.{t.schema_name}.{model}"
    return model

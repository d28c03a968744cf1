"""The served R model: an MLflow pyfunc that scores an RDS file with R's `predict` in the process's embedded R.

The registered model carries the RDS file and `r_packages.txt` (the R packages it needs, with the
versions it was fitted with: the AKS R image installs them) as artifacts, refarch itself as code,
and its column declarations as model config. The request type is generated from those columns when
the model loads (`input_model`, read by the scoring app), so the input of any R model with a
`predict(model, newdata)` method is declared in conf, not written in code. One prediction per row.

R calls block (they wait for the process's one R, see embedded_r): `predict_in_threadpool` tells the
scoring app to run them in its thread pool, so its event loop keeps answering /health meanwhile.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from refarch.rmodel.columns import Columns, ColumnSpec, dump_columns, parse_columns

log = logging.getLogger(__name__)

RDS_ARTIFACT = "model_rds"
PACKAGES_ARTIFACT = "r_packages"
RUNTIME_KEY = "refarch_runtime"  # in the model's metadata: "r" for models that embed R


class RModel(mlflow.pyfunc.PythonModel):
    """`predict(model, newdata)` of an R model read from RDS; the input columns come from the model config."""

    predict_in_threadpool = True  # read by refarch.serving: R calls block
    output_type = list[float]  # one prediction per row (read by refarch.serving for its OpenAPI and JSON)

    def __init__(self) -> None:
        self.columns: Columns | None = None
        self.predictor: Any = None
        self.input_model: Any = None

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from refarch.rmodel.embedded_r import RPredictor

        config = context.model_config or {}
        missing = {"inputs", "r_packages", "predict_args", "max_combined_rows"} - set(config)
        if missing:
            raise RuntimeError(f"the R model was saved without model_config {', '.join(sorted(missing))}")
        self.columns = Columns(parse_columns(config["inputs"]))
        self.predictor = RPredictor(
            context.artifacts[RDS_ARTIFACT],
            kinds=self.columns.kinds,
            factors=self.columns.factors,
            packages=config["r_packages"],
            predict_args=config["predict_args"],
            max_rows=int(config["max_combined_rows"]),
        )
        fitted = config.get("r_package_versions") or {}
        for package, version in self.predictor.package_versions.items():
            if fitted.get(package) not in (None, version):
                log.warning("R package %s is %s here; the model was fitted with %s", package, version, fitted[package])
        self.input_model = self.columns.model

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list[float]:
        """A DataFrame (MLflow), or rows of `input_model` (the scoring app, already validated), or dicts."""
        if self.columns is None or self.predictor is None:
            raise RuntimeError("the model context was not loaded")
        columns, n = self.columns.from_any(model_input)
        return self.predictor.predict(columns, n)


def model_arguments(
    rds_path: str | Path,
    columns: Sequence[ColumnSpec],
    *,
    r_packages: Mapping[str, str],
    predict_args: Mapping[str, Any],
    max_combined_rows: int,
    example: pd.DataFrame,
    folder: Path,
) -> dict[str, Any]:
    """The arguments of log_model/save_model. `r_packages`: R package -> version the model was fitted with."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from refarch.runtime.tracking import model_code_paths, pinned_requirements

    packages_file = folder / "r_packages.txt"
    packages_file.write_text("".join(f"{name}=={version}\n" for name, version in r_packages.items()))
    kinds = {"number": "double", "integer": "long", "factor": "string"}
    signature = ModelSignature(
        inputs=Schema([ColSpec(kinds[c.type], c.name) for c in columns]), outputs=Schema([ColSpec("double")])
    )
    return {
        "python_model": RModel(),
        "artifacts": {RDS_ARTIFACT: str(rds_path), PACKAGES_ARTIFACT: str(packages_file)},
        "model_config": {
            "inputs": dump_columns(columns),
            "r_packages": list(r_packages),
            "r_package_versions": dict(r_packages),
            "predict_args": dict(predict_args),
            "max_combined_rows": max_combined_rows,
        },
        "signature": signature,
        # doubles as doubles: MLflow's schema check refuses int64 for a double column
        "input_example": example[[c.name for c in columns]]
        .head(3)
        .astype({c.name: float for c in columns if c.type == "number"}),
        "code_paths": model_code_paths(),
        "pip_requirements": pinned_requirements("rpy2", "pandas", "numpy", "pydantic"),
        "metadata": {RUNTIME_KEY: "r", "r_packages": dict(r_packages)},
    }


def log_r_model(rds_path: str | Path, columns: Sequence[ColumnSpec], name: str = "model", **kwargs: Any) -> Any:
    """Log the R model in the active run (see model_arguments); returns MLflow's ModelInfo."""
    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.pyfunc.log_model(name=name, **model_arguments(rds_path, columns, folder=Path(tmp), **kwargs))


def save_r_model(path: str | Path, rds_path: str | Path, columns: Sequence[ColumnSpec], **kwargs: Any) -> Path:
    """Save the pyfunc to a folder (no tracking server): for benchmarks, tests and container images."""
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.pyfunc.save_model(str(path), **model_arguments(rds_path, columns, folder=Path(tmp), **kwargs))
    return Path(path)


def cpu_count() -> int:
    """Cores this process may use (its affinity mask, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(model_uri: str) -> int | None:
    """One worker (one R) per core for a model that embeds R; None (the server's own default) otherwise.

    Reads only the model's MLmodel file. A pod's CPU limit is not visible here: give --workers there.
    """
    from mlflow.models import get_model_info

    try:
        metadata = get_model_info(model_uri).metadata or {}
    except Exception as err:  # the server reports a model it cannot load itself, with the full error
        log.debug("no model metadata for %s: %s", model_uri, err)
        return None
    return cpu_count() if metadata.get(RUNTIME_KEY) == "r" else None

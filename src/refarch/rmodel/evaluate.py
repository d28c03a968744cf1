"""Evaluate the R notebook's model on its held-out rows, log it to MLflow, register it, promote it if it wins.

The metrics are computed on the predictions of the logged model itself (loaded back from the run, in
this process's embedded R), so what is measured is what will be served. The current champion is
scored on the same held-out rows; `champion` moves only when the new version has a strictly lower
RMSE (or there is no champion yet). A champion fitted with another split may have seen some of these
rows: the comparison is fair when both runs share the split (conf split.seed and split.test_share).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from refarch.rmodel.columns import Columns, parse_columns
from refarch.rmodel.metrics import RegressionReport, regression_report
from refarch.rmodel.model import log_r_model
from refarch.rmodel.settings import Settings
from refarch.rmodel.spec import TrainInfo, TrainSpec, read_info
from refarch.runtime.config import Config
from refarch.runtime.tracking import registered_model_name

log = logging.getLogger(__name__)

ALIAS = "champion"
PROMOTION_METRIC = "rmse"  # lower is better


@dataclass(frozen=True)
class Evaluation:
    report: RegressionReport
    champion: RegressionReport | None  # the previous champion on the same rows
    champion_version: str | None
    registered_name: str
    version: str
    promoted: bool
    run_id: str
    model_uri: str
    info: TrainInfo
    sample: pd.DataFrame  # a few held-out rows with their prediction

    @property
    def reason(self) -> str:
        if self.champion_version is None:
            return f"version {self.version} is the first model: champion"
        assert self.champion is not None
        verdict = "beats" if self.report.rmse < self.champion.rmse else "does not beat"
        return (
            f"version {self.version} (RMSE {self.report.rmse:.2f}) {verdict} champion version "
            f"{self.champion_version} (RMSE {self.champion.rmse:.2f})"
        )

    def table(self) -> pd.DataFrame:
        """The metrics of the new model beside the champion's, one row each."""
        rows = [{"model": f"new (version {self.version})", **self.report.as_dict()}]
        if self.champion is not None:
            rows.append({"model": f"champion (version {self.champion_version})", **self.champion.as_dict()})
        return pd.DataFrame(rows)


def read_held_out(spec: TrainSpec) -> pd.DataFrame:
    """The rows R held out, factor columns as text (their levels), as R wrote them."""
    path = Path(spec.test_path)
    if not path.is_file():
        raise FileNotFoundError(f"no held-out rows at {path}: did the R train task of run {spec.run} finish?")
    types: dict[str, type] = {c["name"]: str for c in spec.inputs if c["type"] == "factor"}
    types.update({c["name"]: float for c in spec.inputs if c["type"] == "number"})  # 55, not 55.0, in a CSV
    return pd.read_csv(path, dtype=types, keep_default_na=False, na_values=["NA"])


def _champion(name: str) -> tuple[str | None, Any]:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        version = MlflowClient().get_model_version_by_alias(name, ALIAS).version
    except MlflowException:
        return None, None
    return str(version), mlflow.pyfunc.load_model(f"models:/{name}@{ALIAS}")


def _champion_report(champion: Any, test: pd.DataFrame, spec: TrainSpec) -> RegressionReport | None:
    """The champion on the same rows; None when its inputs differ (another model: no comparison, it is replaced)."""
    inputs = [c["name"] for c in spec.inputs]
    try:
        predictions = champion.predict(test[inputs])
    except Exception as err:  # a champion with other inputs cannot be compared on these rows
        log.warning("the champion cannot score the held-out rows (%s): it is replaced", str(err).splitlines()[0])
        return None
    return regression_report(test[spec.target], predictions)


def evaluate_and_register(spec: TrainSpec, settings: Settings, config: Config, *, promote: bool) -> Evaluation:
    """Log the run (parameters, R's report, metrics, the model), register it, move `champion` if it wins."""
    from mlflow import MlflowClient

    info = read_info(spec)
    test = read_held_out(spec)
    columns = parse_columns(spec.inputs)
    inputs = [c.name for c in columns]
    Columns(columns).from_frame(test[inputs])  # R wrote rows the served model would reject: fail here, naming them
    name = registered_model_name(config, settings.model_name)
    champion_version, champion = _champion(name)
    champion_report = _champion_report(champion, test, spec) if champion is not None else None
    del champion
    with mlflow.start_run(run_name=f"rmodel-{spec.run}") as run:
        mlflow.set_tags({"pipeline": "rmodel", "language": "R", "r_version": info.r_version, "run_folder": spec.folder})
        mlflow.log_params(
            {
                **{f"ranger.{k}": v for k, v in spec.ranger.model_dump().items()},
                "split.test_share": spec.split.test_share,
                "split.seed": spec.split.seed,
                "data": info.data,
                **{f"r.{k}": v for k, v in info.packages.items()},
            }
        )
        model_info = log_r_model(
            spec.model_path,
            columns,
            r_packages={p: info.packages[p] for p in spec.r_packages},
            predict_args=settings.serving.predict_args,
            max_combined_rows=settings.serving.max_combined_rows,
            example=test,
        )
        served = mlflow.pyfunc.load_model(model_info.model_uri)
        predictions = served.predict(test[inputs])
        report = regression_report(test[spec.target], predictions)
        mlflow.log_metrics(
            {
                **report.as_dict(),
                "oob_rmse": info.oob_rmse,
                "rows_train": info.rows_train,
                "rows_test": info.rows_test,
                "train_seconds": info.seconds,
                **({f"champion_{k}": v for k, v in champion_report.as_dict().items()} if champion_report else {}),
            }
        )
        mlflow.log_text(json.dumps(spec.model_dump(mode="json"), indent=2), "spec.json")
        version = str(mlflow.register_model(model_info.model_uri, name).version)
    wins = champion_version is None or champion_report is None or report.rmse < champion_report.rmse
    promoted = promote and wins
    if promoted:
        MlflowClient().set_registered_model_alias(name, ALIAS, version)
    sample = test.head(5).assign(predicted=list(predictions[:5]))
    result = Evaluation(
        report=report,
        champion=champion_report,
        champion_version=champion_version,
        registered_name=name,
        version=version,
        promoted=promoted,
        run_id=run.info.run_id,
        model_uri=model_info.model_uri,
        info=info,
        sample=sample,
    )
    log.info("%s; %s", result.reason, "alias moved" if promoted else "alias not moved")
    return result


def model_uri(config: Config, settings: Settings, alias: str = ALIAS) -> str:
    return f"models:/{registered_model_name(config, settings.model_name)}@{alias}"

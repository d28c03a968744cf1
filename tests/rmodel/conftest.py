"""Fixtures of the R model tests: small R models fitted by Rscript, MLflow on the test home, a server thread."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
KEY = "rmodel-key-0123456789abcdef"
ROW_COLUMNS = ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]


def rscript(code: str, cwd: Path | None = None) -> str:
    """Run R code with Rscript; its stdout (R's errors fail the test with R's message)."""
    if shutil.which("Rscript") is None:
        pytest.fail("R is not installed (apt-get install -y r-base-core r-cran-ranger r-cran-ggplot2 r-cran-jsonlite)")
    done = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="session")
def rmodel_settings(config):
    from refarch.rmodel.settings import Settings
    from refarch.runtime.config import load_config

    return load_config("rmodel").settings(Settings)


@pytest.fixture(scope="session")
def tiny_ranger(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 10-tree ranger on 2,000 diamonds; 50 other diamonds with R's own predictions for them."""
    folder = tmp_path_factory.mktemp("tiny-ranger")
    out = rscript(
        f"""
        suppressPackageStartupMessages(library(ranger))
        d <- as.data.frame(ggplot2::diamonds)
        set.seed(1)
        rows <- sample.int(nrow(d), 2050)
        train <- d[rows[1:2000], ]
        test <- d[rows[2001:2050], ]
        m <- ranger(price ~ ., data = train, num.trees = 10, min.node.size = 20, num.threads = 1, seed = 1)
        saveRDS(m, "{folder}/model.rds")
        test$expected <- predict(m, test, num.threads = 1)$predictions
        write.csv(test, "{folder}/test.csv", row.names = FALSE)
        cat(as.character(packageVersion("ranger")))
        """
    )
    # as the evaluate task reads held-out rows: factor values as text, numbers as doubles (MLflow's schema
    # check refuses int64 for a double column, and `table` is a whole number in many diamonds)
    types = {"cut": str, "color": str, "clarity": str, **{c: float for c in ("carat", "depth", "table", "x", "y", "z")}}
    test = pd.read_csv(folder / "test.csv", dtype=types)
    return {"rds": folder / "model.rds", "test": test, "ranger": out.strip(), "folder": folder}


@pytest.fixture(scope="session")
def picky_rds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An R object of class `picky`: its predict method (defined by the tests in the embedded R) is 2 x."""
    path = tmp_path_factory.mktemp("picky") / "picky.rds"
    rscript(f'saveRDS(structure(list(), class = "picky"), "{path}")')
    return path


PICKY_METHOD = """
predict.picky <- function(object, newdata, ...) {
  if (any(newdata$x < 0)) stop("negative x: ", paste(newdata$x[newdata$x < 0], collapse = ", "))
  if (any(newdata$x == 99)) Sys.sleep(2)
  2 * newdata$x
}
"""


@pytest.fixture(scope="session")
def embedded_picky() -> None:
    """`predict.picky` defined in this process's embedded R (S3 dispatch finds it in the global environment)."""
    from refarch.rmodel.embedded_r import embedded_r

    r = embedded_r()
    r.call(lambda: r.ri.baseenv["eval"](r.ri.parse(PICKY_METHOD), r.ri.globalenv))


@pytest.fixture(scope="session")
def tracking(config) -> str:
    """MLflow on the test home's SQLite file."""
    from refarch.runtime.tracking import configure_mlflow

    configure_mlflow(config, "rmodel-tests")
    return config.target.mlflow.tracking_uri


@pytest.fixture(scope="session")
def tiny_model(tiny_ranger, rmodel_settings, tracking) -> dict:
    """The tiny ranger logged as an R pyfunc and registered as `rmodel_tiny@champion`."""
    import mlflow
    from mlflow import MlflowClient

    from refarch.rmodel.model import log_r_model

    s = rmodel_settings
    with mlflow.start_run(run_name="tiny-ranger"):
        info = log_r_model(
            tiny_ranger["rds"],
            s.inputs,
            r_packages={"ranger": tiny_ranger["ranger"]},
            predict_args=s.serving.predict_args,
            max_combined_rows=s.serving.max_combined_rows,
            example=tiny_ranger["test"],
        )
    version = mlflow.register_model(info.model_uri, "rmodel_tiny").version
    MlflowClient().set_registered_model_alias("rmodel_tiny", "champion", version)
    return {"uri": info.model_uri, "registered": "models:/rmodel_tiny@champion"}

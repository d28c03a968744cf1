"""Runtime: Spark session, config and targets, tables, notebook bootstrap, MLflow set-up."""

from refarch.runtime.config import Config, ConfigError, Strict, load_config
from refarch.runtime.notebook import NotebookContext, bootstrap
from refarch.runtime.params import Notebook, Param, ParameterError, TableParam, check_table_name, notebooks
from refarch.runtime.spark import get_spark, on_databricks
from refarch.runtime.tables import Tables

__all__ = [
    "Config",
    "ConfigError",
    "Notebook",
    "NotebookContext",
    "Param",
    "ParameterError",
    "Strict",
    "TableParam",
    "Tables",
    "bootstrap",
    "check_table_name",
    "get_spark",
    "load_config",
    "notebooks",
    "on_databricks",
]

"""Runtime: Spark session, config and targets, tables, notebook bootstrap, MLflow set-up."""

from refarch.runtime.config import Config, ConfigError, load_config
from refarch.runtime.notebook import NotebookContext, Param, ParameterError, bootstrap
from refarch.runtime.spark import get_spark, on_databricks
from refarch.runtime.tables import Tables, check_table_name

__all__ = [
    "Config",
    "ConfigError",
    "NotebookContext",
    "Param",
    "ParameterError",
    "Tables",
    "bootstrap",
    "check_table_name",
    "get_spark",
    "load_config",
    "on_databricks",
]

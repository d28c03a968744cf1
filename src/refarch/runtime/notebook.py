"""The first cell of every notebook: spark, typed parameters and config in one call.

On Databricks parameters are `dbutils.widgets` (filled by the job's base_parameters or
typed in the notebook UI). Elsewhere a shim plays the widgets, fed by `refarch job run`
or by the declared defaults. Either way parameters are checked before any Spark work.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from refarch.runtime.config import Config, ConfigError, load_config
from refarch.runtime.params import Notebook, Param, ParameterError
from refarch.runtime.spark import on_databricks

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)


class Params(Mapping[str, Any]):
    """Parsed parameter values, by key or attribute."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({self._values!r})"


# ---- the local stand-in for dbutils -------------------------------------------------


class LocalWidgets:
    """`dbutils.widgets` off Databricks: values come from the job runner, else the defaults."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._given = dict(values or {})
        self._declared: dict[str, str] = {}

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:  # noqa: N803
        self._declared[name] = defaultValue

    def get(self, name: str) -> str:
        if name in self._given:
            return self._given[name]
        if name in self._declared:
            return self._declared[name]
        raise ParameterError(f"parameter '{name}' was neither declared nor given")

    def getAll(self) -> dict[str, str]:  # noqa: N802
        return {**self._declared, **self._given}

    def removeAll(self) -> None:  # noqa: N802
        self._declared.clear()


class LocalTaskValues:
    """`dbutils.jobs.taskValues` off Databricks: values shared between tasks of one local run."""

    def __init__(self, store: dict[str, dict[str, Any]], task_key: str) -> None:
        self._store = store
        self._task = task_key

    def set(self, key: str, value: Any) -> None:
        self._store.setdefault(self._task, {})[key] = value

    def get(self, taskKey: str, key: str, default: Any = None, debugValue: Any = None) -> Any:  # noqa: N803
        return self._store.get(taskKey, {}).get(key, default if default is not None else debugValue)


@dataclass
class LocalRunContext:
    """What the local job runner hands to the notebook it is running."""

    parameters: dict[str, str] = field(default_factory=dict)
    task_key: str = "notebook"
    task_values: dict[str, dict[str, Any]] = field(default_factory=dict)


_CURRENT: list[LocalRunContext] = []


@contextlib.contextmanager
def local_run(context: LocalRunContext) -> Iterator[LocalRunContext]:
    """Run the notebook code inside with these widget values (used by the job runner)."""
    _CURRENT.append(context)
    try:
        yield context
    finally:
        _CURRENT.pop()


class NotebookExit(Exception):
    """Raised by `exit()` to end a notebook early with a value, as dbutils.notebook.exit does."""

    def __init__(self, value: str = "") -> None:
        super().__init__(value)
        self.value = value


# ---- the context ------------------------------------------------------------------


@dataclass
class NotebookContext:
    params: Params
    config: Config
    _widgets: Any
    _task_values: Any
    settings: Any = None
    notebook: Notebook | None = None
    _spark: SparkSession | None = None
    _tables: Tables | None = None

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            from refarch.runtime.spark import get_spark

            self._spark = get_spark(self.config)
        return self._spark

    @property
    def tables(self) -> Tables:
        if self._tables is None:
            from refarch.runtime.tables import Tables

            self._tables = Tables(self.spark, self.config)
        return self._tables

    def set_task_value(self, key: str, value: Any) -> None:
        """Share a small value with later tasks of the same job run."""
        self._task_values.set(key, value)

    def get_task_value(self, task_key: str, key: str, default: Any = None) -> Any:
        return self._task_values.get(taskKey=task_key, key=key, default=default)

    def exit(self, value: Any = "") -> None:
        """End the notebook with a value (dbutils.notebook.exit on Databricks)."""
        if on_databricks():
            from databricks.sdk.runtime import dbutils

            dbutils.notebook.exit(str(value))
        raise NotebookExit(str(value))


class Declared(Exception):
    """Raised by `bootstrap` inside `declaration_of`: carries the notebook's declaration."""

    def __init__(self, notebook: Notebook) -> None:
        super().__init__(f"{notebook.pipeline}/{notebook.name}")
        self.notebook = notebook


_DECLARE_ONLY: list[bool] = []


@contextlib.contextmanager
def declare_only() -> Iterator[None]:
    """Inside, `bootstrap` raises `Declared` at once: no config, no Spark, no MLflow."""
    _DECLARE_ONLY.append(True)
    try:
        yield
    finally:
        _DECLARE_ONLY.pop()


def resolve_params(notebook: Notebook, config: Config) -> tuple[Param, ...]:
    """The declared parameters with defaults of `setting` parameters read from the settings."""
    try:
        return tuple(p.with_settings(config.pipeline) for p in notebook.params)
    except KeyError as err:
        raise ConfigError(f"conf/{notebook.pipeline}.yml: {err.args[0]}") from None


def parse_values(params: Sequence[Param], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter parsed and checked; the first bad one raises, naming itself."""
    return {p.name: p.parse(raw.get(p.name)) for p in params}


def typed_settings(notebook: Notebook, config: Config, values: Mapping[str, Any]) -> Any:
    """The pipeline's settings with the `setting` parameters' values applied and validated."""
    if notebook.settings is None:
        return None
    overrides = {p.setting: values[p.name] for p in notebook.params if p.setting is not None}
    try:
        return config.settings(notebook.settings, overrides)
    except ConfigError as err:
        for p in notebook.params:
            if p.setting is not None and f": {p.setting}" in str(err):
                raise ParameterError(f"parameter '{p.name}' ({p.setting}): {str(err).split(': ', 2)[-1]}") from None
        raise


def _load_config(notebook: Notebook, target: str | None, widgets: Any) -> Config:
    """The target's config; a notebook opened by hand outside a deployed bundle asks its `target` widget."""
    from refarch.runtime.workspace import TargetNotFound

    try:
        return load_config(notebook.pipeline or None, target)
    except TargetNotFound:
        widgets.text("target", "", "target")
        chosen = (widgets.get("target") or "").strip()
        if not chosen:
            raise
        return load_config(notebook.pipeline or None, chosen)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "urllib3", "azure", "alembic", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def bootstrap(
    notebook: Notebook | str | None = None,
    params: Sequence[Param] = (),
    target: str | None = None,
    experiment: str | None = None,
    start_spark: bool | None = None,
) -> NotebookContext:
    """Declare parameters, read and check them, load config and settings, start Spark and MLflow.

    `notebook` is the notebook's declaration from `refarch.<pipeline>.params` (or, for a
    notebook of your own, a pipeline name with `params`). Parameters and settings are checked
    before Spark starts, so a bad date or table name fails in a second with a message naming it.
    """
    if not isinstance(notebook, Notebook):
        notebook = Notebook(notebook or "", "", tuple(params))
    if _DECLARE_ONLY:
        raise Declared(notebook)
    _logging()
    if on_databricks():
        from databricks.sdk.runtime import dbutils

        widgets, task_values = dbutils.widgets, dbutils.jobs.taskValues
    else:
        run = _CURRENT[-1] if _CURRENT else LocalRunContext()
        widgets = LocalWidgets(run.parameters)
        task_values = LocalTaskValues(run.task_values, run.task_key)
    config = _load_config(notebook, target, widgets)
    declared = resolve_params(notebook, config)
    for p in declared:
        widgets.text(p.name, p.default_text(), p.name)
    values = parse_values(declared, {p.name: widgets.get(p.name) for p in declared})
    settings = typed_settings(notebook, config, values)
    ctx = NotebookContext(
        params=Params(values),
        config=config,
        _widgets=widgets,
        _task_values=task_values,
        settings=settings,
        notebook=notebook,
    )
    log.info("target %s, parameters %s", config.target.name, values)
    if notebook.start_spark if start_spark is None else start_spark:
        _ = ctx.spark
    if experiment or notebook.pipeline:
        from refarch.runtime.tracking import configure_mlflow

        configure_mlflow(config, experiment or notebook.pipeline or "default")
    return ctx

"""The first cell of every notebook: spark, typed parameters and config in one call.

On Databricks parameters are `dbutils.widgets` (filled by the job's base_parameters or
typed in the notebook UI). Elsewhere a shim plays the widgets, fed by `refarch job run`
or by the declared defaults. Either way parameters are checked before any Spark work.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from refarch.runtime.config import Config, load_config
from refarch.runtime.spark import on_databricks

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from refarch.runtime.tables import Tables

log = logging.getLogger(__name__)


class ParameterError(ValueError):
    """A notebook or job parameter that is missing, of the wrong type or out of range."""


_MISSING = object()


@dataclass(frozen=True)
class Param:
    """A declared parameter: its type comes from `type` or the default's type."""

    name: str
    default: Any = _MISSING
    type: type | None = None
    help: str = ""
    choices: Sequence[Any] | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    check: Callable[[Any], bool] | None = None

    @property
    def kind(self) -> type:
        if self.type is not None:
            return self.type
        if self.default is _MISSING or self.default is None:
            return str
        return type(self.default)

    def default_text(self) -> str:
        if self.default is _MISSING or self.default is None:
            return ""
        return to_text(self.default)

    def parse(self, raw: Any) -> Any:
        """Turn a widget string (or a value) into the declared type and check it."""
        if raw is None or raw == "":
            if self.default is _MISSING:
                raise ParameterError(f"parameter '{self.name}' is required{self._hint()}")
            value = self.default
        else:
            value = _convert(self.name, raw, self.kind)
        if value is None:
            return None
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"parameter '{self.name}': '{raw}' is not one of {', '.join(map(str, self.choices))}")
        if self.min is not None and value < self.min:
            raise ParameterError(f"parameter '{self.name}': {value} is below the minimum {self.min}")
        if self.max is not None and value > self.max:
            raise ParameterError(f"parameter '{self.name}': {value} is above the maximum {self.max}")
        if self.pattern is not None and not re.fullmatch(self.pattern, str(value)):
            raise ParameterError(f"parameter '{self.name}': '{value}' does not match {self.pattern}")
        if self.check is not None and not self.check(value):
            raise ParameterError(f"parameter '{self.name}': '{value}' is not allowed{self._hint()}")
        return value

    def _hint(self) -> str:
        return f" ({self.help})" if self.help else ""


def to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _convert(name: str, raw: Any, kind: type) -> Any:
    if isinstance(raw, kind) and kind is not str:
        return raw
    text = str(raw).strip()
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is dt.datetime:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if kind is dt.date:
            return dt.date.fromisoformat(text)
        if kind in (list, tuple):
            return [p.strip() for p in text.split(",") if p.strip()]
        return text
    except ValueError:
        raise ParameterError(f"parameter '{name}': '{raw}' is not a valid {kind.__name__}") from None


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


def bootstrap(
    pipeline: str | None = None,
    params: Sequence[Param] = (),
    target: str | None = None,
    experiment: str | None = None,
    start_spark: bool = True,
) -> NotebookContext:
    """Declare parameters, read and check them, load config, start Spark and MLflow.

    Parameters are checked before Spark starts, so a bad date or table name fails in
    a second with a message naming it.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "urllib3", "azure", "alembic", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if on_databricks():
        from databricks.sdk.runtime import dbutils

        widgets, task_values = dbutils.widgets, dbutils.jobs.taskValues
    else:
        run = _CURRENT[-1] if _CURRENT else LocalRunContext()
        widgets = LocalWidgets(run.parameters)
        task_values = LocalTaskValues(run.task_values, run.task_key)
    for p in params:
        widgets.text(p.name, p.default_text(), p.name)
    values = {p.name: p.parse(widgets.get(p.name)) for p in params}
    config = load_config(pipeline, target)
    ctx = NotebookContext(params=Params(values), config=config, _widgets=widgets, _task_values=task_values)
    log.info("target %s, parameters %s", config.target.name, values)
    if start_spark:
        _ = ctx.spark
    if experiment or pipeline:
        from refarch.runtime.tracking import configure_mlflow

        configure_mlflow(config, experiment or pipeline or "default")
    return ctx

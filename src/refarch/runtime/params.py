"""Declared parameters: what a notebook takes, typed and checked, readable without running it.

Each pipeline declares its notebooks' parameters in `refarch.<pipeline>.params`, as one
`Notebook` per notebook file. The notebook's first cell passes that object to `bootstrap`;
the job-level check reads the very same objects, so a bad value for the last task of a job
fails before the first task starts, on a laptop and on a Databricks job cluster alike (where
the notebooks are workspace objects the wheel cannot read, but the wheel itself is installed).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

MISSING: Any = object()

# A table: `table`, `schema.table` or `catalog.schema.table`; letters, digits and _.
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


class ParameterError(ValueError):
    """A notebook or job parameter that is missing, of the wrong type or out of range."""


class TableNameError(ParameterError):
    """A table name that is not `table`, `schema.table` or `catalog.schema.table`."""


def check_table_name(name: str, param: str = "table") -> str:
    """Validate a table name before any Spark work; the error names the parameter."""
    if not isinstance(name, str) or not TABLE_NAME.match(name):
        raise TableNameError(
            f"parameter '{param}': '{name}' is not a table name "
            "(letters, digits and _; optionally schema.table or catalog.schema.table)"
        )
    return name


@dataclass(frozen=True)
class Param:
    """A declared parameter; its type comes from `type`, else from the default's type.

    `setting` names a dotted key of the pipeline's settings (`als.search`): the default is
    that setting's value in `conf/<pipeline>.yml` for the target, and a value given for the
    parameter overrides the setting for this run. The default then lives once, in conf.
    """

    name: str
    default: Any = MISSING
    type: type | None = None
    help: str = ""
    choices: Sequence[Any] | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    check: Callable[[Any], bool] | None = None
    setting: str | None = None
    table: bool = False
    item: type | None = None  # the type of a list's elements (from a setting's value when not given)

    @property
    def kind(self) -> type:
        if self.type is not None:
            return self.type
        if self.default is MISSING or self.default is None:
            return str
        return type(self.default)

    def default_text(self) -> str:
        if self.default is MISSING or self.default is None:
            return ""
        return to_text(self.default)

    def with_settings(self, settings: Mapping[str, Any]) -> Param:
        """This parameter with its default read from the settings it overrides."""
        if self.setting is None:
            return self
        value = lookup(settings, self.setting)
        kind = self.type
        if kind is None:
            kind = list if isinstance(value, list) else (str if value is None else type(value))
        item = self.item
        if item is None and isinstance(value, list) and value:
            item = type(value[0])
        return replace(self, default=value, type=kind, item=item)

    def parse(self, raw: Any) -> Any:
        """Turn a widget string (or a value) into the declared type and check it."""
        if raw is None or raw == "":
            if self.default is MISSING:
                raise ParameterError(f"parameter '{self.name}' is required{self._hint()}")
            value = self.default
        else:
            value = _convert(self.name, raw, self.kind, self.item)
        if value is None or (self.table and value == ""):
            return value
        if self.table:
            return check_table_name(value, self.name)
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

    def describe(self) -> str:
        """`type`, `default` and help in one line, for `refarch job list --params`."""
        kind = self.kind.__name__ if self.kind is not list else "list"
        if self.table:
            kind = "table"
        if self.choices is not None:
            kind += " (" + "|".join(map(str, self.choices)) + ")"
        return kind

    def _hint(self) -> str:
        return f" ({self.help})" if self.help else ""


def TableParam(name: str, default: Any = MISSING, help: str = "", optional: bool = False) -> Param:  # noqa: N802
    """A table-name parameter: `table`, `schema.table` or `catalog.schema.table` (empty if optional)."""
    if optional and default is MISSING:
        default = ""
    return Param(name, default, type=str, help=help, table=True)


def to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _convert(name: str, raw: Any, kind: type, item: type | None = None) -> Any:
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
            pieces = [p.strip() for p in text.split(",") if p.strip()]
            return pieces if item in (None, str) else [_convert(name, p, item) for p in pieces]
        return text
    except ParameterError:
        raise
    except ValueError:
        raise ParameterError(f"parameter '{name}': '{raw}' is not a valid {kind.__name__}") from None


def lookup(data: Mapping[str, Any], dotted: str) -> Any:
    """`data["a"]["b"]` for `a.b`; a missing key is a configuration error naming it."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"setting '{dotted}' is not in the pipeline's conf")
        node = node[part]
    return node


def with_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of nested `data` with dotted keys set to new values."""
    out: dict[str, Any] = _copy(data)
    for dotted, value in overrides.items():
        node = out
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def _copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


NOTEBOOK_SUFFIXES = {"python": ".ipynb", "r": ".r"}


@dataclass(frozen=True)
class Notebook:
    """One notebook's declaration: its pipeline, file stem, parameters and settings model.

    The notebook `notebooks/<pipeline>/<name>.ipynb` bootstraps with it; the job check finds
    it again from the notebook path alone. An R notebook (`language="r"`, `<name>.r` in Databricks
    source format) cannot call `bootstrap`: its declaration is what the job check and the local
    runner hold its `dbutils.widgets` values to.
    """

    pipeline: str
    name: str
    params: tuple[Param, ...] = ()
    settings: Any = None  # the pipeline's root settings model (a Strict subclass), or None
    start_spark: bool = True
    help: str = ""
    language: str = "python"  # "r": an R notebook in Databricks source format (its parameters read by dbutils.widgets)

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"notebook {self.pipeline}/{self.name} declares {', '.join(dup)} twice")
        object.__setattr__(self, "params", tuple(self.params))
        if self.language not in NOTEBOOK_SUFFIXES:
            raise ValueError(
                f"notebook {self.pipeline}/{self.name}: language must be one of {sorted(NOTEBOOK_SUFFIXES)}"
            )

    @property
    def path(self) -> str:
        return f"notebooks/{self.pipeline}/{self.name}{NOTEBOOK_SUFFIXES[self.language]}"

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def notebooks(pipeline: str, settings: Any = None) -> Callable[..., Notebook]:
    """A factory for one pipeline's declarations: `notebook("05_topk", [Param(...)])`."""

    def make(
        name: str,
        params: Sequence[Param] = (),
        *,
        start_spark: bool = True,
        help: str = "",
        language: str = "python",
    ) -> Notebook:
        return Notebook(pipeline, name, tuple(params), settings, start_spark, help, language)

    return make

"""Typed configuration: `conf/<target>.yml` merged with `conf/<pipeline>.yml`.

Only conf/ differs between targets; code asks the config, never the target name.
Errors name the file and the dotted key so a person can fix them without reading code.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from refarch.runtime.paths import local_home, project_root

TARGET_ENV = "REFARCH_TARGET"
DEFAULT_TARGET = "local"
M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A missing or wrong configuration key; the message names file and key."""


class Strict(BaseModel):
    """The base of every settings model: unknown keys are errors, values are read-only.

    Settings models declare no defaults: the value lives once, in conf/, and a missing key
    is an error naming the file, not a silent fallback to a number written in code.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkConf(Strict):
    master: str = "local[*]"
    driver_memory: str = "4g"
    shuffle_partitions: int = Field(8, ge=1)
    extra: dict[str, str] = Field(default_factory=dict)


class MlflowConf(Strict):
    tracking_uri: str
    registry_uri: str
    artifact_root: str | None = None
    experiment_prefix: str
    dfs_tmp: str | None = None  # MLFLOW_DFS_TMP: where Spark-flavour models are staged (a volume on Databricks)


class ServingStoreConf(Strict):
    kind: Literal["sqlite", "redis"] = "sqlite"
    path: str | None = None
    host: str | None = None  # redis: on Databricks REFARCH_STORE_HOST, from the secret scope
    port: int = 6379
    ssl: bool = False
    cluster: bool = False  # redis: Redis Cluster (a clustered Azure Cache, or the OSS cluster policy)
    buckets: int | None = None  # redis: hashes a version's lists spread over (None: the store's default, 256)
    password_env: str | None = None
    password_file: str | None = None
    prefix: str | None = None  # of every key: per user in dev


class BlobConf(Strict):
    kind: Literal["azurite", "account"] = "azurite"
    container: str = "refarch"
    connection_string_env: str | None = None
    account_url: str | None = None
    credential: str | None = None  # Unity Catalog service credential (Databricks): no key anywhere
    prefix: str = ""  # of every blob name: per user in dev
    azurite_port: int = 10000


class PathsConf(Strict):
    """Where files live: folders on this machine, Unity Catalog volumes on Databricks.

    Pipeline conf files refer to them as {datasets}, {checkpoints} and {scratch}.
    """

    datasets: str
    checkpoints: str
    scratch: str


class TargetConf(Strict):
    """One deployment target; `schema` in YAML is `schema_name` here (pydantic owns `schema`)."""

    name: str
    platform: Literal["local", "databricks"]
    catalog: str = "main"
    schema_name: str = Field("refarch", alias="schema")
    warehouse: str | None = None
    paths: PathsConf
    spark: SparkConf = Field(default_factory=SparkConf)
    mlflow: MlflowConf
    serving_store: ServingStoreConf = Field(default_factory=ServingStoreConf)
    blob: BlobConf = Field(default_factory=BlobConf)


class Config(BaseModel):
    """A target's settings plus one pipeline's parameters."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    target: TargetConf
    pipeline_name: str | None = None
    pipeline: dict[str, Any] = Field(default_factory=dict)
    root: Path
    home: Path

    def settings(self, model: type[M], overrides: Mapping[str, Any] | None = None) -> M:
        """The pipeline's settings validated by its root model, with dotted-key overrides.

        `overrides` maps a setting (`als.search`) to the value a job parameter gave; an
        error in an overridden value names that setting, so the caller can name its parameter.
        """
        from refarch.runtime.params import with_overrides

        data = with_overrides(self.pipeline, overrides or {})
        source = f"conf/{self.pipeline_name}.yml (target {self.target.name})"
        try:
            return model.model_validate(data)
        except ValidationError as err:
            raise ConfigError(_explain(source, err)) from None

    def section(self, model: type[M], key: str | None = None) -> M:
        """Validate the pipeline's parameters (or one key of them) against `model`."""
        data = self.pipeline if key is None else self.pipeline.get(key)
        source = f"conf/{self.pipeline_name}.yml"
        if data is None:
            raise ConfigError(f"{source}: missing key '{key}'")
        try:
            return model.model_validate(data)
        except ValidationError as err:
            raise ConfigError(_explain(source, err, prefix=key)) from None


def _explain(source: str, err: ValidationError, prefix: str | None = None) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(e["loc"]))
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"{source}: {loc or '<root>'}: {msg}")
    return "\n".join(lines)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _expand(value: Any, mapping: dict[str, str]) -> Any:
    """Fill `{home}`/`{root}` placeholders in strings, recursively."""
    if isinstance(value, str):
        for k, v in mapping.items():
            value = value.replace("{" + k + "}", v)
        return value
    if isinstance(value, dict):
        return {k: _expand(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, mapping) for v in value]
    return value


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def current_target(target: str | None = None) -> str:
    """The given target, else $REFARCH_TARGET, else (on Databricks) the deployed bundle's, else local.

    On Databricks the local target is refused: its Parquet, SQLite and Azurite would land in the
    workspace files of the bundle.
    """
    from refarch.runtime.workspace import TargetNotFound, databricks_target, on_databricks

    if not on_databricks():
        return target or os.environ.get(TARGET_ENV) or DEFAULT_TARGET
    found = target or databricks_target()
    if found is None:
        raise TargetNotFound(
            "cannot tell which bundle target this notebook belongs to (not under .bundle/<name>/<target>/files): "
            "type dev, staging or prod into the 'target' widget"
        )
    if found == DEFAULT_TARGET:
        raise ConfigError("the local target runs only off Databricks; pick dev, staging or prod")
    return found


def _placeholders(raw: dict[str, Any], name: str, root: Path) -> tuple[dict[str, str], Path]:
    """What `{...}` in conf files stands for on this target, and the local state folder."""
    platform = raw.get("platform", "local")
    if platform == "local":
        home = local_home(root)
        catalog, schema = str(raw.get("catalog", "main")), str(raw.get("schema", "refarch"))
        mapping = {
            "home": str(home),
            "volumes": str(home / "volumes"),
            "user": os.environ.get("REFARCH_USER", "local"),
            "bundle_root": str(home),
        }
        variables: dict[str, Any] | None = None
    else:
        from refarch.runtime.workspace import bundle_context

        home = root / ".refarch"
        ctx = bundle_context(root, name)
        catalog, schema = ctx.catalog, ctx.schema
        mapping = {"volumes": f"/Volumes/{catalog}/{schema}", "user": ctx.user, "bundle_root": ctx.bundle_root}
        variables = ctx.variables
    mapping.update(root=str(root), target=name, catalog=catalog, schema=schema)
    if variables is None and "{var." in yaml.safe_dump(raw):
        from refarch.jobs.bundle import load_bundle

        variables = load_bundle(root, name, strict=False).variables
    for key, value in (variables or {}).items():
        mapping[f"var.{key}"] = str(value)
    paths = _expand(raw.get("paths") or {}, mapping)
    mapping.update({k: str(v) for k, v in paths.items() if isinstance(v, str)})
    return mapping, home


def _unfilled(value: Any, where: str) -> None:
    """A `{name}` placeholder left after expansion is a typo or a variable the bundle lacks."""
    text = yaml.safe_dump(value)
    left = sorted(set(re.findall(r"\{(?:var\.)?[a-z_]+\}", text)))
    if left:
        raise ConfigError(f"{where}: unknown placeholder(s) {', '.join(left)}")


def load_config(
    pipeline: str | None = None,
    target: str | None = None,
    root: Path | None = None,
) -> Config:
    """Load `conf/<target>.yml` (+ `conf/<pipeline>.yml`).

    The pipeline file holds parameters; a `targets: {<name>: {...}}` block in it
    overrides them per target. Strings may hold placeholders: {home} and {root} (local),
    {catalog}, {schema}, {volumes}, {user}, {target}, {bundle_root}, {var.<bundle variable>},
    and the target's paths {datasets}, {checkpoints}, {scratch}. On Databricks catalog,
    schema and user come from the job cluster's environment (set by the bundle), else from
    the deployed bundle's files, so conf never repeats a bundle variable.
    """
    root = (root or project_root()).resolve()
    name = current_target(target)
    conf_dir = root / "conf"
    target_file = conf_dir / f"{name}.yml"
    if not target_file.is_file():
        known = sorted(p.stem for p in conf_dir.glob("*.yml") if _is_target_file(p))
        raise ConfigError(f"unknown target '{name}': no {target_file} (targets: {', '.join(known)})")
    raw = _read_yaml(target_file)
    raw.setdefault("name", name)
    for key, env in (("catalog", "REFARCH_CATALOG"), ("schema", "REFARCH_SCHEMA")):
        if os.environ.get(env):
            raw[key] = os.environ[env]
    mapping, home = _placeholders(raw, name, root)
    raw.setdefault("catalog", mapping["catalog"])
    raw.setdefault("schema", mapping["schema"])
    raw = _expand(raw, mapping)
    _unfilled(raw, f"conf/{name}.yml")
    try:
        target_conf = TargetConf.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_explain(f"conf/{name}.yml", err)) from None

    params: dict[str, Any] = {}
    if pipeline:
        pipe_file = conf_dir / f"{pipeline}.yml"
        if not pipe_file.is_file():
            raise ConfigError(f"unknown pipeline '{pipeline}': no {pipe_file}")
        params = _read_yaml(pipe_file)
        overrides = params.pop("targets", {}) or {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"conf/{pipeline}.yml: targets: expected a mapping of target names")
        params = deep_merge(params, overrides.get(name, {}) or {})
        params = _expand(params, mapping)
        _unfilled(params, f"conf/{pipeline}.yml")
    return Config(target=target_conf, pipeline_name=pipeline, pipeline=params, root=root, home=home)


def _is_target_file(path: Path) -> bool:
    try:
        return "platform" in (yaml.safe_load(path.read_text()) or {})
    except yaml.YAMLError:
        return False

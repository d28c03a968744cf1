"""Read the bundle as the Databricks CLI would: databricks.yml, its includes, a target's variables.

Only what a local run needs is resolved: `${var.*}`, `${bundle.*}` and `${workspace.*}`
references, from the target's variable overrides and the variables' defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from refarch.runtime.config import current_target
from refarch.runtime.paths import project_root

_REF = re.compile(r"\$\{([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)+)\}")


class BundleError(ValueError):
    """The bundle files cannot be read or a reference cannot be resolved."""


@dataclass(frozen=True)
class JobDef:
    """One job resource: its key, the file that defines it, and its resolved spec."""

    key: str
    file: Path
    spec: dict[str, Any]

    @property
    def folder(self) -> Path:
        return self.file.parent


@dataclass
class Bundle:
    root: Path
    target: str
    config: dict[str, Any]
    variables: dict[str, Any]
    jobs: dict[str, JobDef] = field(default_factory=dict)

    def job(self, name: str) -> JobDef:
        if name in self.jobs:
            return self.jobs[name]
        for job in self.jobs.values():
            if job.file.name in (name, f"{name}.job.yml", f"{name}.yml"):
                return job
        raise BundleError(f"no job '{name}' in the bundle (jobs: {', '.join(sorted(self.jobs)) or 'none'})")


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise BundleError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: expected a mapping at the top level")
    return data


def included_files(root: Path, config: dict[str, Any]) -> list[Path]:
    files: list[Path] = []
    for pattern in config.get("include", []) or []:
        files.extend(sorted(root.glob(pattern)))
    return files


def load_bundle(root: Path | None = None, target: str | None = None) -> Bundle:
    """Load databricks.yml and its includes with the target's variables resolved."""
    root = (root or project_root()).resolve()
    config = read_yaml(root / "databricks.yml")
    target = current_target(target)
    targets = config.get("targets", {}) or {}
    if target not in targets:
        raise BundleError(f"databricks.yml: no target '{target}' (targets: {', '.join(targets)})")
    tconf = targets[target] or {}
    variables = {k: (v or {}).get("default") for k, v in (config.get("variables", {}) or {}).items()}
    for k, v in (tconf.get("variables", {}) or {}).items():
        if k not in variables:
            raise BundleError(f"databricks.yml: targets.{target}.variables.{k}: not a declared variable")
        variables[k] = v.get("default") if isinstance(v, dict) else v
    name = (config.get("bundle", {}) or {}).get("name", "bundle")
    context = {
        "bundle": {"name": name, "target": target},
        "workspace": {
            "file_path": str(root),
            "root_path": str(root),
            "current_user": {"userName": "local", "short_name": "local"},
        },
        "var": variables,
    }
    bundle = Bundle(root=root, target=target, config=config, variables=variables)
    for path in included_files(root, config):
        data = read_yaml(path)
        for key, spec in ((data.get("resources", {}) or {}).get("jobs", {}) or {}).items():
            if key in bundle.jobs:
                raise BundleError(f"{path}: job '{key}' is also defined in {bundle.jobs[key].file}")
            resolved = resolve(spec, context, f"{path.name}: resources.jobs.{key}")
            bundle.jobs[key] = JobDef(key=key, file=path, spec=resolved)
    return bundle


def resolve(value: Any, context: dict[str, Any], where: str) -> Any:
    """Substitute `${a.b.c}` references; a whole-string reference keeps the value's type."""
    if isinstance(value, dict):
        return {k: resolve(v, context, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, context, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _REF.fullmatch(value)
    if whole:
        return _lookup(whole.group(1), context, where)
    return _REF.sub(lambda m: str(_lookup(m.group(1), context, where)), value)


def _lookup(ref: str, context: dict[str, Any], where: str) -> Any:
    node: Any = context
    for part in ref.split("."):
        if part == "variables" and node is context:
            part = "var"
        if not isinstance(node, dict) or part not in node:
            raise BundleError(f"{where}: cannot resolve ${{{ref}}}")
        node = node[part]
    if isinstance(node, str) and "${" in node:
        return resolve(node, context, where)
    return node

"""Read the bundle as the Databricks CLI would: databricks.yml, its includes, a target's variables.

`${var.*}`, `${bundle.*}`, `${workspace.*}` and `${resources.*}` references are resolved from
the variables (defaults, target overrides, $BUNDLE_VAR_*), the target's workspace paths and the
declared resources, as the CLI resolves them at deploy time. What only a workspace knows (ids of
created resources) resolves to a marker that the local runner leaves out.
"""

from __future__ import annotations

import os
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
    resources: dict[str, Any] = field(default_factory=dict)
    workspace: dict[str, Any] = field(default_factory=dict)
    given: dict[str, Any] = field(default_factory=dict)  # the variables passed to load_bundle (--var)

    def as_user(self, user_name: str) -> Bundle:
        """The same bundle resolved as `user_name`: `${workspace.current_user.*}` is who runs the CLI."""
        return load_bundle(root=self.root, target=self.target, variables=self.given, user=user_name)

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


LOCAL_TARGET = "local"
UNRESOLVED = "<unresolved:"  # what a reference becomes where only a workspace can fill it in


@dataclass(frozen=True)
class CurrentUser:
    """`${workspace.current_user.*}`: an e-mail (users) or an application id (service principals)."""

    user_name: str
    short_name: str

    @classmethod
    def of(cls, user_name: str) -> CurrentUser:
        """The CLI's short name: the part before @, lower case, other characters than [a-z0-9] as _."""
        local = user_name.split("@", 1)[0].lower()
        return cls(user_name, re.sub(r"[^a-z0-9]", "_", local))


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(out[k], v) if k in out else v
        return out
    return over


def load_bundle(
    root: Path | None = None,
    target: str | None = None,
    variables: dict[str, Any] | None = None,
    user: str | None = None,
    strict: bool = True,
) -> Bundle:
    """Load databricks.yml and its includes for a target, references resolved as the CLI would.

    Variables: defaults, then the target's, then $BUNDLE_VAR_<name>, then `variables`. A variable
    without a value is an error naming it, as in the CLI (`strict=False`, for code that only reads
    the bundle on a cluster, leaves it unresolved instead). `local` is refarch's own target (never
    deployed): defaults only, the checkout as the workspace, unset variables left unresolved.
    In `mode: development` schemas are named `dev_<short name>_<name>`, as the CLI names them.
    """
    root = (root or project_root()).resolve()
    config = read_yaml(root / "databricks.yml")
    target = current_target(target)
    targets = config.get("targets", {}) or {}
    local = target == LOCAL_TARGET
    if not local and target not in targets:
        known = ", ".join([LOCAL_TARGET, *targets])
        raise BundleError(f"databricks.yml: no target '{target}' (targets: {known})")
    tconf = (targets.get(target) or {}) if not local else {}
    declared = config.get("variables", {}) or {}
    values = {k: (v or {}).get("default") for k, v in declared.items()}
    for k, v in (tconf.get("variables", {}) or {}).items():
        if k not in values:
            raise BundleError(f"databricks.yml: targets.{target}.variables.{k}: not a declared variable")
        values[k] = v.get("default") if isinstance(v, dict) else v
    for k in declared:
        if os.environ.get(f"BUNDLE_VAR_{k}"):
            values[k] = os.environ[f"BUNDLE_VAR_{k}"]
    for k, v in (variables or {}).items():
        if k not in declared:
            raise BundleError(f"variable '{k}' is not declared in databricks.yml")
        values[k] = v
    missing = sorted(k for k, v in values.items() if v is None)
    if missing and strict and not local:
        raise BundleError(
            f"target {target}: no value for required variable(s) {', '.join(missing)} "
            f"(set BUNDLE_VAR_<name> or pass --var name=value)"
        )
    for k in missing:
        values[k] = f"{UNRESOLVED}var.{k}>"
    name = (config.get("bundle", {}) or {}).get("name", "bundle")
    who = CurrentUser.of(user or ("local" if local else "someone@example.com"))
    if local:
        root_path = file_path = str(root)
    else:
        default_root = f"/Workspace/Users/{who.user_name}/.bundle/{name}/{target}"
        root_path = str((tconf.get("workspace") or {}).get("root_path") or default_root)
        file_path = f"{root_path}/files"
    context: dict[str, Any] = {
        "bundle": {"name": name, "target": target},
        "workspace": {
            "root_path": root_path,
            "file_path": file_path,
            "current_user": {"userName": who.user_name, "short_name": who.short_name},
        },
        "var": values,
    }
    context["workspace"]["root_path"] = resolve(root_path, context, "workspace.root_path")
    context["workspace"]["file_path"] = resolve(file_path, context, "workspace.file_path")
    values = {k: resolve(v, context, f"variables.{k}") for k, v in values.items()}  # e.g. ${workspace.*}
    context["var"] = values
    files = [root / "databricks.yml", *included_files(root, config)]
    raw: dict[str, Any] = {}
    sources: dict[tuple[str, str], Path] = {}
    for path in files:
        data = config if path == root / "databricks.yml" else read_yaml(path)
        for kind, items in (data.get("resources", {}) or {}).items():
            for key, spec in (items or {}).items():
                if (kind, key) in sources:
                    raise BundleError(f"{path}: {kind[:-1]} '{key}' is also defined in {sources[kind, key]}")
                sources[kind, key] = path
                raw.setdefault(kind, {})[key] = spec
    raw = _merge(raw, tconf.get("resources", {}) or {})
    development = tconf.get("mode") == "development"
    resources = _resolve_resources(raw, context, development, who)
    context["resources"] = resources
    bundle = Bundle(root=root, target=target, config=config, variables=values, given=dict(variables or {}))
    bundle.resources = resources
    for key, spec in (raw.get("jobs") or {}).items():
        path = sources["jobs", key]
        resolved = resolve(spec, context, f"{path.name}: resources.jobs.{key}")
        bundle.jobs[key] = JobDef(key=key, file=path, spec=resolved)
    bundle.workspace = context["workspace"]
    return bundle


def _resolve_resources(
    raw: dict[str, Any], context: dict[str, Any], development: bool, who: CurrentUser
) -> dict[str, Any]:
    """Schemas and volumes resolved, with the names and paths the CLI gives them; the rest as declared.

    Ids exist only once a workspace created the resource: they resolve to a marker.
    """
    out: dict[str, Any] = {k: {} for k in raw}
    context = {**context, "resources": out}
    for key, spec in (raw.get("schemas") or {}).items():
        schema = resolve(spec, context, f"resources.schemas.{key}")
        if development:
            schema["name"] = f"dev_{who.short_name}_{schema['name']}"
        schema["id"] = f"{UNRESOLVED}resources.schemas.{key}.id>"
        out["schemas"][key] = schema
    for key, spec in (raw.get("volumes") or {}).items():
        volume = resolve(spec, context, f"resources.volumes.{key}")
        volume["volume_path"] = f"/Volumes/{volume['catalog_name']}/{volume['schema_name']}/{volume['name']}"
        out["volumes"][key] = volume
    for kind, items in raw.items():
        if kind in ("schemas", "volumes", "jobs"):
            continue
        for key, spec in (items or {}).items():
            out[kind][key] = {**spec, "id": f"{UNRESOLVED}resources.{kind}.{key}.id>"}
    for key in raw.get("jobs") or {}:
        out.setdefault("jobs", {})[key] = {"id": f"{UNRESOLVED}resources.jobs.{key}.id>"}
    return out


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

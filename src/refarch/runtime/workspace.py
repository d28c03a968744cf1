"""Where code runs on Databricks: the bundle target, catalog, schema and user it works for.

A job cluster states it in its environment, filled by the bundle at deploy time:
`REFARCH_TARGET`, `REFARCH_CATALOG`, `REFARCH_SCHEMA` (`${resources.schemas.refarch.name}`, with
the dev prefix), `REFARCH_USER` (the deploying user's short name) and `REFARCH_ROOT` (the synced
files). A notebook opened by hand in a deployed bundle finds the same things itself: the target from
its workspace path (`…/.bundle/<bundle>/<target>/files/…`), the catalog and schema from the bundle's
own files for that target, the user from the workspace. On Databricks it never falls back to the
local target.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TARGET_ENV = "REFARCH_TARGET"
_BUNDLE_PATH = re.compile(r"/\.bundle/[^/]+/([^/]+)/files(?:/|$)")


class TargetNotFound(RuntimeError):
    """On Databricks, with no target in the environment, the notebook path or the `target` widget."""


def on_databricks() -> bool:
    """True inside a Databricks runtime (cluster, job or serverless)."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def target_from_path(path: str | None) -> str | None:
    """`dev` for `/Workspace/Users/me/.bundle/refarch/dev/files/notebooks/x`; None elsewhere."""
    if not path:
        return None
    found = _BUNDLE_PATH.search(path)
    return found.group(1) if found else None


def notebook_path() -> str | None:
    """The running notebook's workspace path (Databricks only; None when the context hides it)."""
    try:
        from databricks.sdk.runtime import dbutils

        context = dbutils.notebook.entry_point.getDbutils().notebook().getContext()
        return str(context.notebookPath().get())
    except Exception:  # not in a notebook, or a runtime that does not expose the context
        return None


def databricks_target() -> str | None:
    """The target of the deployed bundle this code runs from: environment, else notebook or cwd path."""
    return os.environ.get(TARGET_ENV) or target_from_path(notebook_path()) or target_from_path(os.getcwd())


@lru_cache(maxsize=1)
def current_user_name() -> str:
    """The signed-in user (e-mail) or service principal (application id)."""
    from databricks.sdk import WorkspaceClient

    return str(WorkspaceClient().current_user.me().user_name)


@dataclass(frozen=True)
class BundleContext:
    """The values conf/<target>.yml may refer to as {catalog}, {schema}, {user}, {bundle_root}, {var.X}."""

    catalog: str
    schema: str
    user: str
    bundle_root: str
    variables: dict[str, Any]


def bundle_context(root: Path, target: str) -> BundleContext:
    """The deployed bundle's values: the job cluster's environment first, else the bundle's files."""
    from refarch.jobs.bundle import load_bundle

    env_user = os.environ.get("REFARCH_USER")
    user_name = current_user_name() if not env_user and on_databricks() else None
    bundle = load_bundle(root, target, user=user_name, strict=False)
    schema = bundle.resources.get("schemas", {}).get("refarch", {}).get("name") or bundle.variables.get("schema")
    # a deployed bundle's root folder is the parent of its files/ (the job cluster's REFARCH_ROOT)
    deployed = os.environ.get("REFARCH_ROOT", "").rstrip("/")
    if deployed.endswith("/files"):
        bundle_root = deployed.removesuffix("/files")
    elif root.name == "files":
        bundle_root = str(root.parent)
    else:
        bundle_root = str(bundle.workspace["root_path"])
    bundle_root = bundle_root.removeprefix("/Workspace")
    return BundleContext(
        catalog=os.environ.get("REFARCH_CATALOG") or str(bundle.variables["catalog"]),
        schema=os.environ.get("REFARCH_SCHEMA") or str(schema),
        user=env_user or bundle.workspace["current_user"]["short_name"],
        bundle_root=bundle_root,
        variables=dict(bundle.variables),
    )

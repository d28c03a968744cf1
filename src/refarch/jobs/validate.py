"""Offline `bundle validate`: what the Databricks CLI would reject, found without a workspace.

Three checks per file: the CLI's own JSON schema (a copy ships in this package, produced by the
CLI version pinned in `schema/CLI_VERSION`), a strict parse of each
job with the `databricks-bundles` models, and the references a schema cannot see
(notebook paths that exist and are notebooks, `depends_on` naming a task of the job).
Every message names the file, the key path and what is wrong.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import nbformat

from refarch.jobs.bundle import BundleError, included_files, read_yaml
from refarch.runtime.paths import project_root

log = logging.getLogger(__name__)

SCHEMA_ENV = "REFARCH_BUNDLE_SCHEMA"


SCHEMA = Path(__file__).with_name("schema") / "databricks-bundle.schema.json"


def schema_path() -> Path:
    """The CLI's schema: $REFARCH_BUNDLE_SCHEMA (another CLI version's), else the copy in this package."""
    path = Path(os.environ[SCHEMA_ENV]) if os.environ.get(SCHEMA_ENV) else SCHEMA
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (the file `databricks bundle schema` prints)")
    return path


@lru_cache(maxsize=2)
def load_validator(path: Path) -> jsonschema.Draft202012Validator:
    # The CLI's patterns use Go's \p{L} and \p{N}; Python's re knows neither.
    text = path.read_text().replace(r"[\\p{L}\\p{N}]", r"[^\\W_]").replace(r"\\p{L}", r"[^\\W\\d_]")
    return jsonschema.Draft202012Validator(json.loads(text))


def _key_path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<root>"


def _leaf_errors(error: jsonschema.ValidationError) -> Iterator[jsonschema.ValidationError]:
    """Inside oneOf (value or `${var}` string), keep the branch that went deepest."""
    if not error.context:
        yield error
        return
    # drop the "it could also be a ${...} string" branch: its type error is noise
    real = [e for e in error.context if not (e.validator == "type" and e.validator_value == "string")]
    real = [e for e in real if not (e.validator == "pattern" and "\\$\\{" in str(e.validator_value))] or real
    if not real:
        yield error
        return
    deepest = max(len(e.absolute_path) for e in real)
    for e in real:
        if len(e.absolute_path) == deepest:
            yield from _leaf_errors(e)


def _explain(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown key{'s' if len(extra) > 1 else ''} {', '.join(repr(e) for e in extra)}"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    return error.message


def schema_problems(data: dict[str, Any], rel: str, validator: jsonschema.Draft202012Validator) -> list[str]:
    problems: set[str] = set()
    for err in validator.iter_errors(data):
        for leaf in _leaf_errors(err):
            path = list(leaf.absolute_path)
            if leaf.validator == "additionalProperties":
                extra = sorted(set(leaf.instance) - set(leaf.schema.get("properties", {})))
                for key in extra:
                    problems.add(f"{rel}: {_key_path([*path, key])}: unknown key '{key}'")
                continue
            problems.add(f"{rel}: {_key_path(path)}: {_explain(leaf)}")
    return sorted(problems)


def model_problems(jobs: dict[str, Any], rel: str) -> list[str]:
    """Strict parse with the databricks-bundles models (the Python face of the same resources)."""
    from databricks.bundles.jobs import Job

    problems = []
    for key, spec in jobs.items():
        try:
            Job.from_dict(spec)
        except (ValueError, TypeError) as err:
            problems.append(f"{rel}: resources.jobs.{key}: {err}")
    return problems


def is_notebook(path: Path) -> bool:
    if path.suffix == ".ipynb":
        try:
            nbformat.validate(nbformat.read(str(path), as_version=4))
            return True
        except Exception:
            return False
    if path.suffix in (".py", ".r"):  # Databricks source format (Python, R)
        return path.read_text().startswith("# Databricks notebook source")
    return False


def reference_problems(jobs: dict[str, Any], file: Path, rel: str) -> list[str]:
    problems = []
    for key, spec in jobs.items():
        tasks = spec.get("tasks", []) or []
        task_keys = [t.get("task_key") for t in tasks]
        for dup in sorted({k for k in task_keys if task_keys.count(k) > 1}):
            problems.append(f"{rel}: resources.jobs.{key}.tasks: task_key '{dup}' is used twice")
        cluster_keys = {c.get("job_cluster_key") for c in spec.get("job_clusters", []) or []}
        for i, task in enumerate(tasks):
            where = f"{rel}: resources.jobs.{key}.tasks[{i}]"
            for j, dep in enumerate(task.get("depends_on", []) or []):
                if dep.get("task_key") not in task_keys:
                    problems.append(
                        f"{where}.depends_on[{j}].task_key: '{dep.get('task_key')}' is not a task of job '{key}'"
                    )
            if task.get("job_cluster_key") and task["job_cluster_key"] not in cluster_keys:
                problems.append(f"{where}.job_cluster_key: '{task['job_cluster_key']}' is not in job_clusters")
            nb = (task.get("notebook_task") or {}).get("notebook_path")
            if nb and "${" not in nb:
                path = (file.parent / nb).resolve()
                found = next((p for p in (path, path.with_name(path.name + ".ipynb")) if p.is_file()), None)
                if found is None:
                    problems.append(f"{where}.notebook_task.notebook_path: {nb} does not exist")
                elif not is_notebook(found):
                    problems.append(f"{where}.notebook_task.notebook_path: {nb} is not a notebook")
    return problems


def validate_file(path: Path, root: Path, validator: jsonschema.Draft202012Validator) -> list[str]:
    rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    try:
        data = read_yaml(path)
    except BundleError as err:
        return [str(err)]
    problems = schema_problems(data, rel, validator)
    jobs = ((data.get("resources") or {}).get("jobs") or {}) if isinstance(data.get("resources"), dict) else {}
    if isinstance(jobs, dict):
        problems += model_problems(jobs, rel)
        problems += reference_problems(jobs, path, rel)
    return problems


def validate_bundle(root: Path | str | None = None) -> list[str]:
    """Every problem of databricks.yml and its included files; empty when the bundle is valid."""
    root = Path(root).resolve() if root else project_root()
    validator = load_validator(schema_path())
    main = root / "databricks.yml"
    problems = validate_file(main, root, validator)
    try:
        config = read_yaml(main)
    except BundleError:
        return problems
    files = included_files(root, config)
    if not files:
        log.warning("databricks.yml includes no files")
    for path in files:
        problems += validate_file(path, root, validator)
    return problems

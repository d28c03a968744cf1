"""The bundle as deployed to dev, staging and prod declares everything the code will touch.

For each Databricks target the bundle is resolved as CI deploys it, and each notebook task's config is
loaded with its job cluster's environment, as on the cluster. Every volume path, table and experiment
the code would use must lie inside the schema, the volumes or the bundle folder the bundle declares,
and nothing local (.refarch, SQLite, Azurite, /tmp, loopback) may remain.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from refarch.jobs.bundle import Bundle, load_bundle
from refarch.jobs.check import notebook_tasks
from refarch.runtime.config import load_config
from refarch.runtime.notebook import resolve_params

REPO = Path(__file__).resolve().parents[2]
SP = "6a1f0c1e-0000-4000-8000-00000000beef"
USERS = {"dev": "jane.doe@contoso.com", "staging": SP, "prod": SP}
LOCAL_ONLY = ("/.refarch", "sqlite:", "azurite", "127.0.0.1", "localhost", "file:", "{home}")


def resolved(target: str, root: Path = REPO) -> Bundle:
    variables = None if target == "dev" else {"deployer_sp": SP, "notification_email": "ml-oncall@contoso.com"}
    return load_bundle(root, target, variables=variables, user=USERS[target])


@dataclass(frozen=True)
class Touched:
    where: str
    kind: str  # path, table, experiment, text
    value: str


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")
    elif isinstance(value, str):
        yield where, value


def touched(bundle: Bundle, monkeypatch: pytest.MonkeyPatch) -> list[Touched]:
    """What each notebook task of each job would use, with its job cluster's environment."""
    out: list[Touched] = []
    for key, job in bundle.jobs.items():
        for where, text in _strings(job.spec, f"jobs.{key}"):
            out.append(Touched(where, "text", text))
        clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job.spec.get("job_clusters", [])}
        values = {p["name"]: str(p["default"]) for p in job.spec.get("parameters", [])}
        for task in notebook_tasks(job, bundle.root):
            nb = task.declaration
            if nb is None or not nb.pipeline:
                continue
            spec = next(t for t in job.spec["tasks"] if t["task_key"] == task.key)
            env = clusters[spec["job_cluster_key"]].get("spark_env_vars", {})
            with monkeypatch.context() as m:
                for name, value in env.items():  # REFARCH_ROOT: the workspace files, as on the cluster
                    if "{{secrets/" not in str(value):
                        m.setenv(name, str(value))
                config = load_config(nb.pipeline, bundle.target, root=bundle.root)
            at = f"{key}.{task.key} ({nb.pipeline})"
            for where, text in _strings(config.target.model_dump(by_alias=True), "target"):
                out.append(Touched(f"{at} conf/{bundle.target}.yml {where}", "path", text))
            for where, text in _strings(config.pipeline, nb.pipeline):
                out.append(Touched(f"{at} conf/{nb.pipeline}.yml {where}", "path", text))
            prefix = config.target.mlflow.experiment_prefix
            out.append(Touched(f"{at} experiment", "experiment", f"{prefix}{nb.pipeline}"))
            widgets = {**task.base_parameters, **values}
            for p in resolve_params(nb, config):
                if p.table:
                    name = widgets.get(p.name) or p.default_text()
                    if name:
                        parts = name.split(".")
                        full = [config.target.catalog, config.target.schema_name][: 3 - len(parts)] + parts
                        out.append(Touched(f"{at} table parameter {p.name}", "table", ".".join(full)))
    return out


def undeclared(bundle: Bundle, items: list[Touched]) -> list[str]:
    volumes = [v["volume_path"] for v in bundle.resources.get("volumes", {}).values()]
    schemas = {f"{s['catalog_name']}.{s['name']}" for s in bundle.resources.get("schemas", {}).values()}
    root = str(bundle.workspace["root_path"]).removeprefix("/Workspace")
    problems = []
    for item in items:
        lowered = item.value.lower()
        local = any(marker in lowered for marker in LOCAL_ONLY) or lowered.startswith(("/tmp", "/dbfs/tmp"))
        if local and "{{secrets/" not in item.value:
            problems.append(f"{item.where}: local-only {item.value!r}")
        elif item.kind == "path" and item.value.startswith(("/Users/", "/Workspace/", "/Shared/")):
            if not item.value.removeprefix("/Workspace").startswith(root + "/"):
                problems.append(f"{item.where}: {item.value} is outside the bundle folder {root}")
        elif item.kind == "path" and item.value.startswith("/"):
            inside = any(item.value == v or item.value.startswith(v + "/") for v in volumes)
            if not inside:
                problems.append(f"{item.where}: {item.value} is in no declared volume")
        elif item.kind == "table" and item.value.rsplit(".", 1)[0] not in schemas:
            problems.append(f"{item.where}: table {item.value} is in no declared schema")
        elif item.kind == "experiment" and not item.value.startswith(root + "/"):
            problems.append(f"{item.where}: experiment {item.value} is outside the bundle folder {root}")
    return problems


@pytest.mark.parametrize("target", ["dev", "staging", "prod"])
def test_everything_the_code_touches_is_declared(target, monkeypatch):
    bundle = resolved(target)
    items = touched(bundle, monkeypatch)
    kinds = {i.kind for i in items}
    assert kinds == {"text", "path", "table", "experiment"}, kinds
    assert sum(i.kind == "table" for i in items) >= 20
    assert undeclared(bundle, items) == []


def test_dev_gives_each_developer_their_own_schema_keys_and_prefix(monkeypatch):
    bundle = resolved("dev")
    assert bundle.resources["schemas"]["refarch"]["name"] == "dev_jane_doe_refarch"
    items = touched(bundle, monkeypatch)
    store = {i.value for i in items if i.where.endswith("serving_store.prefix")}
    blob = {i.value for i in items if i.where.endswith("blob.prefix")}
    assert store == {"refarch:jane_doe:recommender:"} and blob == {"dev/jane_doe/"}
    checkpoints = {i.value for i in items if i.where.endswith("paths.checkpoints")}
    assert checkpoints == {"/Volumes/refarch_dev/dev_jane_doe_refarch/checkpoints"}


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    for name in ("databricks.yml",):
        shutil.copy(REPO / name, tmp_path / name)
    for folder in ("resources", "jobs", "conf", "notebooks"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("conf/prod.yml", 'scratch: "{volumes}/tmp"', 'scratch: "/dbfs/tmp/refarch"', "local-only '/dbfs/tmp/refarch"),
        ("conf/prod.yml", 'datasets: "{volumes}/datasets"', 'datasets: "{volumes}/data"', "is in no declared volume"),
        ("conf/prod.yml", 'experiment_prefix: "{bundle_root}/"', 'experiment_prefix: "/Shared/refarch/"', "outside"),
    ],
)
def test_a_path_outside_the_declared_resources_is_found(repo_copy, monkeypatch, file, old, new, expected):
    path = repo_copy / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    bundle = resolved("prod", repo_copy)
    problems = undeclared(bundle, touched(bundle, monkeypatch))
    assert problems and all(expected in p for p in problems[:1]), problems[:3]


def test_a_table_outside_the_schema_is_found(repo_copy, monkeypatch):
    job = repo_copy / "jobs" / "maintenance_scoring.job.yml"
    job.write_text(job.read_text().replace("default: maintenance_scores", "default: other_schema.scores"))
    bundle = resolved("prod", repo_copy)
    problems = undeclared(bundle, touched(bundle, monkeypatch))
    assert any("table refarch_prod.other_schema.scores is in no declared schema" in p for p in problems), problems

"""Run a bundle job on this machine, as the Databricks job would run it.

Tasks run in `depends_on` order in this process, sharing one Spark session; notebook
tasks get their `base_parameters` plus the job parameters as widget values; retries
follow `max_retries`; a failure stops the tasks that depend on it and is named. R notebooks
(Databricks source format, `.r`) run with Rscript (refarch.jobs.r_notebook); base parameters
may refer to an earlier task's values, `{{tasks.<task>.values.<key>}}`, as on Databricks.
"""

from __future__ import annotations

import datetime as dt
import graphlib
import importlib
import logging
import os
import re
import sys
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from refarch.jobs.bundle import UNRESOLVED, JobDef, load_bundle
from refarch.jobs.check import check_job_parameters
from refarch.jobs.notebook_exec import NotebookError, run_notebook
from refarch.jobs.r_notebook import is_r_notebook, run_r_notebook
from refarch.runtime.notebook import LocalRunContext, NotebookExit, local_run
from refarch.runtime.params import ParameterError, to_text

log = logging.getLogger(__name__)

_DYNAMIC = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")
MAX_LOCAL_RETRIES = 3


class JobError(ValueError):
    """A job that cannot start: unknown job, unknown parameter, bad task graph."""


@dataclass
class TaskResult:
    task_key: str
    status: str  # SUCCESS, FAILED, SKIPPED
    attempts: int = 0
    seconds: float = 0.0
    error: str = ""
    exit_value: str | None = None


@dataclass
class JobResult:
    job: str
    tasks: list[TaskResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.status == "SUCCESS" for t in self.tasks)

    @property
    def failed(self) -> list[TaskResult]:
        return [t for t in self.tasks if t.status == "FAILED"]

    def summary(self) -> str:
        width = max([len(t.task_key) for t in self.tasks] + [4])
        lines = [f"job {self.job}: {'SUCCESS' if self.ok else 'FAILED'}", f"{'task':<{width}}  status   tries  seconds"]
        for t in self.tasks:
            lines.append(f"{t.task_key:<{width}}  {t.status:<7}  {t.attempts:>5}  {t.seconds:>7.1f}")
        total = sum(t.seconds for t in self.tasks)
        lines.append(f"{'total':<{width}}  {'':<7}  {'':>5}  {total:>7.1f}")
        for t in self.failed:
            lines.append(f"task '{t.task_key}' failed: {t.error}")
        return "\n".join(lines)


def parse_params(pairs: Iterable[str], flag: str = "--param") -> dict[str, str]:
    """`name=value` pairs as the Databricks CLI takes them (`--param`, `--var`): the value may hold `=`."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise JobError(f"{flag} {pair!r}: expected name=value")
        params[key.strip()] = value
    return params


def job_parameters(spec: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """Job parameter defaults overridden by `given`; an undeclared name is an error."""
    declared = {p["name"]: "" if p.get("default") is None else str(p["default"]) for p in spec.get("parameters", [])}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ParameterError(
            f"unknown job parameter(s) {', '.join(unknown)}; this job takes: {', '.join(declared) or 'none'}"
        )
    return {**declared, **given}


def dynamic_references(job: JobDef, values: Mapping[str, str], run_id: str) -> dict[str, str]:
    """The `{{...}}` dynamic value references of a local run, as a manual run on Databricks has them."""
    start = dt.datetime.now(dt.timezone.utc)
    return {
        "job.id": job.key,
        "job.name": str(job.spec.get("name", job.key)),
        "job.run_id": run_id,
        "job.start_time.iso_date": start.date().isoformat(),
        "job.start_time.iso_datetime": start.isoformat(timespec="seconds"),
        "job.trigger.time.iso_date": start.date().isoformat(),
        "job.trigger.time.iso_datetime": start.isoformat(timespec="seconds"),
        "job.trigger.type": "manual",
        **{f"job.parameters.{k}": v for k, v in values.items()},
    }


def resolve_dynamic(values: Mapping[str, str], refs: Mapping[str, str]) -> dict[str, str]:
    """Job parameter values with their `{{...}}` references filled in (unknown ones kept as written)."""
    return {k: _DYNAMIC.sub(lambda m: refs.get(m.group(1), m.group(0)), v) for k, v in values.items()}


def _dynamic(value: str, refs: Mapping[str, str], where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in refs:
            if key.startswith("tasks."):
                raise JobError(f"{where}: {{{{{key}}}}}: no such task value was set by an upstream task of this run")
            raise JobError(f"{where}: unknown dynamic value reference {{{{{key}}}}}")
        return refs[key]

    return _DYNAMIC.sub(sub, value)


def task_value_refs(task_values: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """`tasks.<task>.values.<key>` for every value set so far in this run (as widget text)."""
    return {
        f"tasks.{task}.values.{key}": to_text(value)
        for task, values in task_values.items()
        for key, value in values.items()
    }


def _task_order(tasks: list[dict[str, Any]], job: str) -> list[str]:
    keys = [t["task_key"] for t in tasks]
    graph: dict[str, list[str]] = {}
    for t in tasks:
        deps = [d["task_key"] for d in t.get("depends_on", []) or []]
        for d in deps:
            if d not in keys:
                raise JobError(f"job {job}: task '{t['task_key']}' depends on unknown task '{d}'")
        graph[t["task_key"]] = deps
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as err:
        raise JobError(f"job {job}: depends_on has a cycle: {' -> '.join(err.args[1])}") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=keys.index)
        order.extend(ready)
        sorter.done(*ready)
    return order


def _cluster_env(job: dict[str, Any], task: dict[str, Any]) -> dict[str, str]:
    key = task.get("job_cluster_key")
    cluster = task.get("new_cluster")
    if key:
        cluster = next((c["new_cluster"] for c in job.get("job_clusters", []) if c["job_cluster_key"] == key), None)
    env = {k: str(v) for k, v in ((cluster or {}).get("spark_env_vars", {}) or {}).items()}
    # secrets and resource ids exist only in a workspace; the workspace's catalog and schema are not ours
    return {
        k: v
        for k, v in env.items()
        if "{{secrets/" not in v and UNRESOLVED not in v and k not in ("REFARCH_CATALOG", "REFARCH_SCHEMA")
    }


class _Env:
    """Set environment variables for one task and put the old values back."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc: object) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_wheel_task(wheel: dict[str, Any]) -> None:
    package, entry = wheel["package_name"], wheel["entry_point"]
    func = None
    try:
        dist = metadata.distribution(package)
        func = next((ep.load() for ep in dist.entry_points if ep.name == entry), None)
    except metadata.PackageNotFoundError:
        pass
    if func is None:  # as Databricks does: call <package>.<entry_point>() directly
        module = importlib.import_module(package.replace("-", "_"))
        func = getattr(module, entry, None)
        if func is None:
            raise JobError(f"python_wheel_task: no entry point '{entry}' in package '{package}'")
    if wheel.get("named_parameters"):
        argv = [f"--{k}={v}" for k, v in wheel["named_parameters"].items()]
    else:
        argv = [str(a) for a in wheel.get("parameters", []) or []]
    saved = sys.argv
    sys.argv = [entry, *argv]
    try:
        code = func()
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = saved
    if code not in (None, 0):
        raise JobError(f"entry point {package}:{entry} exited with {code}")


def run_job(
    name: str,
    params: Mapping[str, str] | None = None,
    target: str | None = None,
    root: Path | None = None,
) -> JobResult:
    """Run one job of the bundle locally; never raises for a task failure, see JobResult.

    Every parameter of every notebook task is checked first: a bad one raises ParameterError
    (naming it, its tasks and notebooks) before the first task starts.
    """
    bundle = load_bundle(root, target)
    job: JobDef = bundle.job(name)
    spec = job.spec
    values = job_parameters(spec, params or {})
    tasks = {t["task_key"]: t for t in spec.get("tasks", [])}
    order = _task_order(list(tasks.values()), job.key)
    run_id = uuid.uuid4().hex[:12]
    refs = dynamic_references(job, values, run_id)
    values = resolve_dynamic(values, refs)  # a default such as {{job.trigger.time.iso_date}}
    refs.update({f"job.parameters.{k}": v for k, v in values.items()})
    check_job_parameters(
        job, values, bundle.root, bundle.target, resolve=lambda v: _DYNAMIC.sub(lambda m: refs.get(m.group(1), ""), v)
    )
    task_values: dict[str, dict[str, Any]] = {}
    results: dict[str, TaskResult] = {}
    log.info(
        "job %s (%s): %d tasks, target %s, parameters %s", job.key, job.file.name, len(order), bundle.target, values
    )
    with _Env({"REFARCH_TARGET": bundle.target}):  # notebook_exec picks the Agg backend itself
        for key in order:
            task = tasks[key]
            deps = [d["task_key"] for d in task.get("depends_on", []) or []]
            blocked = [d for d in deps if results[d].status != "SUCCESS"]
            if blocked:
                results[key] = TaskResult(
                    key, "SKIPPED", error=f"upstream task(s) {', '.join(blocked)} did not succeed"
                )
                log.error("task %s skipped: %s", key, results[key].error)
                continue
            task_refs = {**refs, "task.name": key, "task.run_id": f"{run_id}-{key}"}
            results[key] = _run_task(job, task, values, task_refs, task_values)
    return JobResult(job=job.key, tasks=[results[k] for k in order])


def _run_task(
    job: JobDef,
    task: dict[str, Any],
    job_params: Mapping[str, str],
    refs: Mapping[str, str],
    task_values: dict[str, dict[str, Any]],
) -> TaskResult:
    key = task["task_key"]
    retries = int(task.get("max_retries", 0) or 0)
    retries = MAX_LOCAL_RETRIES if retries < 0 else retries
    wait = min(int(task.get("min_retry_interval_millis", 0) or 0) / 1000, 5.0)
    result = TaskResult(key, "FAILED")
    began = time.perf_counter()
    for attempt in range(1, retries + 2):
        result.attempts = attempt
        try:
            with _Env(_cluster_env(job.spec, task)):
                result.exit_value = _execute(job, task, job_params, refs, task_values)
            result.status, result.error = "SUCCESS", ""
            break
        except Exception as err:
            result.error = str(err) if isinstance(err, NotebookError) else f"{type(err).__name__}: {err}"
            if isinstance(err, ParameterError) or isinstance(err.__cause__, ParameterError):
                log.error("task %s: %s (bad parameters are not retried)", key, result.error)
                break  # bad input does not get better with retries
            log.error("task %s attempt %d failed: %s\n%s", key, attempt, result.error, traceback.format_exc())
            if attempt <= retries:
                time.sleep(wait)
    result.seconds = time.perf_counter() - began
    return result


def _execute(
    job: JobDef,
    task: dict[str, Any],
    job_params: Mapping[str, str],
    refs: Mapping[str, str],
    task_values: dict[str, dict[str, Any]],
) -> str | None:
    key = task["task_key"]
    where = f"{job.file.name}: task {key}"
    if "notebook_task" in task:
        nb = task["notebook_task"]
        path = (job.folder / nb["notebook_path"]).resolve()
        if path.suffix != ".ipynb" and not path.exists():
            path = path.with_name(path.name + ".ipynb")
        refs = {**refs, **task_value_refs(task_values)}
        base = {k: _dynamic(str(v), refs, where) for k, v in (nb.get("base_parameters") or {}).items()}
        widgets = {**base, **job_params}  # job parameters win, as on Databricks
        log.info("task %s: notebook %s with %s", key, path.name, widgets)
        if is_r_notebook(path):
            timeout = task.get("timeout_seconds")
            return run_r_notebook(path, widgets, timeout=float(timeout) if timeout else None)
        try:
            with local_run(LocalRunContext(parameters=widgets, task_key=key, task_values=task_values)):
                run_notebook(path)
        except NotebookExit as done:
            return done.value
        return None
    if "python_wheel_task" in task:
        wheel = dict(task["python_wheel_task"])
        if wheel.get("parameters"):
            wheel["parameters"] = [_dynamic(str(p), refs, where) for p in wheel["parameters"]]
        if wheel.get("named_parameters"):
            named = {k: _dynamic(str(v), refs, where) for k, v in wheel["named_parameters"].items()}
            wheel["named_parameters"] = {**named, **job_params}  # pushed down as on Databricks
        with local_run(LocalRunContext(parameters=dict(job_params), task_key=key, task_values=task_values)):
            _run_wheel_task(wheel)
        return None
    kinds = [k for k in task if k.endswith("_task")]
    raise JobError(f"{where}: {', '.join(kinds) or 'no task type'} cannot run locally")

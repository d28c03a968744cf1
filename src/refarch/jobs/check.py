"""Check every parameter of a job run before its first task: a typo fails in seconds, not after an hour.

Each notebook task's widget values (its `base_parameters`, then the job parameters, which win
as on Databricks) are parsed against the notebook's declaration: type, range, choices, pattern,
table names, and the settings that parameters override. The declarations come from
`refarch.<pipeline>.params`, found from the notebook path alone (`notebooks/<pipeline>/<name>`),
so the same check runs in the local runner and as the first task of a Databricks job, where the
notebooks are workspace objects and only the wheel is importable. A notebook of your own that
declares its parameters inline is read by running its first cell in declare-only mode (locally).
R notebooks cannot declare inline: theirs live in `refarch.<pipeline>.params` like any other.
A base parameter fed by an earlier task's value (`{{tasks.<task>.values.<key>}}`) is known only
while the job runs: the parameter it fills is left to the notebook.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refarch.jobs.bundle import JobDef
from refarch.runtime.config import Config, ConfigError, load_config
from refarch.runtime.notebook import parse_values, resolve_params, typed_settings
from refarch.runtime.params import Notebook, Param, ParameterError

log = logging.getLogger(__name__)

TASK_VALUE = re.compile(r"\{\{\s*tasks\.[\w.]+\s*\}\}")


class JobParameterError(ParameterError):
    """One or more parameters of a job run are bad; the message names each with its tasks."""


@dataclass
class NotebookTask:
    """A notebook task of a job with its declaration (None: the notebook declares nothing we can read)."""

    key: str
    path: Path
    relpath: str
    base_parameters: dict[str, str]
    declaration: Notebook | None


@dataclass
class _Problem:
    message: str
    where: list[str] = field(default_factory=list)


def notebook_path(job: JobDef, task: Mapping[str, Any]) -> Path:
    """The notebook file of a task, relative paths taken from the job file's folder."""
    path = (job.folder / task["notebook_task"]["notebook_path"]).resolve()
    if path.suffix != ".ipynb" and not path.exists():
        path = path.with_name(path.name + ".ipynb")
    return path


def registered_declaration(path: Path) -> Notebook | None:
    """`refarch.<pipeline>.params`'s declaration of `notebooks/<pipeline>/<name>`, if there is one."""
    try:
        module = importlib.import_module(f"refarch.{path.parent.name}.params")
    except ImportError:
        return None
    return next((v for v in vars(module).values() if isinstance(v, Notebook) and v.name == path.stem), None)


def declaration_for(path: Path) -> Notebook | None:
    """The registered declaration, else (a notebook of your own, locally) its first cell's."""
    found = registered_declaration(path)
    if found is not None or not path.is_file():
        return found
    if path.suffix.lower() == ".r":
        log.warning("%s: an R notebook without a declaration in refarch.%s.params", path.name, path.parent.name)
        return None
    from refarch.jobs.notebook_exec import NotebookError, declaration_of

    try:
        return declaration_of(path)
    except NotebookError as err:
        log.warning("%s: no parameter declaration to check (%s)", path.name, err)
        return None


def notebook_tasks(job: JobDef, root: Path) -> list[NotebookTask]:
    out = []
    for task in job.spec.get("tasks", []) or []:
        if "notebook_task" not in task:
            continue
        path = notebook_path(job, task)
        rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        base = {k: str(v) for k, v in (task["notebook_task"].get("base_parameters") or {}).items()}
        out.append(NotebookTask(task["task_key"], path, rel, base, declaration_for(path)))
    return out


def check_job_parameters(
    job: JobDef,
    values: Mapping[str, str],
    root: Path,
    target: str | None = None,
    resolve: Any = None,
) -> None:
    """Raise JobParameterError naming every bad parameter with the tasks and notebooks that declare it.

    `values` are the job parameters (defaults applied); `resolve` fills `{{...}}` references in
    base parameters (the runner's), else base parameters holding one are left unchecked.
    """
    configs: dict[str, Config] = {}
    problems: dict[str, _Problem] = {}

    def report(message: str, task: NotebookTask) -> None:
        problems.setdefault(message, _Problem(message)).where.append(f"task {task.key}: {task.relpath}")

    for task in notebook_tasks(job, root):
        nb = task.declaration
        if nb is None:
            continue
        # filled by an upstream task while the job runs (unless a job parameter of that name wins)
        deferred = {k for k, v in task.base_parameters.items() if TASK_VALUE.search(v) and k not in values}
        widgets = {
            k: v
            for k, v in task.base_parameters.items()
            if k not in deferred and (resolve is not None or "{{" not in v)
        }
        if resolve is not None:
            widgets = {k: resolve(v) for k, v in widgets.items()}
        widgets.update(values)
        try:
            if nb.pipeline not in configs:
                configs[nb.pipeline] = load_config(nb.pipeline or None, target, root=root)
            declared = resolve_params(nb, configs[nb.pipeline])
        except ConfigError as err:
            report(str(err), task)
            continue
        # a setting overridden by a task value is known only at run time: the settings are checked then
        settings_known = not any(p.setting is not None and p.name in deferred for p in declared)
        declared = tuple(p for p in declared if p.name not in deferred)
        bad = False
        for p in declared:
            try:
                p.parse(widgets.get(p.name))
            except ParameterError as err:
                report(str(err), task)
                bad = True
        if bad or not settings_known:
            continue
        try:
            typed_settings(nb, configs[nb.pipeline], parse_values(declared, widgets))
        except (ParameterError, ConfigError) as err:
            report(str(err), task)
    if problems:
        lines = [f"{p.message} ({'; '.join(p.where)})" for p in problems.values()]
        raise JobParameterError(f"job {job.key}: bad parameters, no task was run:\n" + "\n".join(lines))


@dataclass
class JobParameterInfo:
    """A job parameter as `refarch job list --params` shows it."""

    name: str
    default: str
    kind: str
    help: str
    tasks: list[str]


def describe_job_parameters(job: JobDef, root: Path, target: str | None = None) -> list[JobParameterInfo]:
    """Each job parameter with the type and help of the first notebook that declares it."""
    declared: dict[str, tuple[Param, list[str], Notebook]] = {}
    for task in notebook_tasks(job, root):
        if task.declaration is None:
            continue
        for p in task.declaration.params:
            entry = declared.setdefault(p.name, (p, [], task.declaration))
            entry[1].append(task.key)
    out = []
    for spec in job.spec.get("parameters", []) or []:
        name, default = spec["name"], "" if spec.get("default") is None else str(spec["default"])
        if name not in declared:
            out.append(JobParameterInfo(name, default, "?", "declared by no notebook of this job", []))
            continue
        param, tasks, nb = declared[name]
        if param.setting is not None and default == "":
            try:
                config = load_config(nb.pipeline, target, root=root)
                shown = param.with_settings(config.pipeline)
                default = f"(conf {param.setting}: {shown.default_text()})"
                param = shown
            except (ConfigError, KeyError):
                default = f"(conf {param.setting})"
        out.append(JobParameterInfo(name, default, param.describe(), param.help, tasks))
    return out


def main(argv: list[str] | None = None) -> int:
    """`refarch-check-parameters --job=<key> [--<parameter>=<value> ...]`: the first task of every job.

    On Databricks the job's parameters arrive pushed down as `--name=value` (a python_wheel_task with
    named_parameters); the target and the bundle's files come from the job cluster's environment.
    Exit 0 when every parameter is valid, 2 (naming each bad one) otherwise.
    """
    import sys

    from refarch.jobs.bundle import BundleError, load_bundle
    from refarch.jobs.runner import job_parameters
    from refarch.runtime.config import current_target
    from refarch.runtime.paths import project_root

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = sys.argv[1:] if argv is None else argv
    given: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not sep:
            sys.stderr.write(f"refarch-check-parameters: expected --name=value, got {arg!r}\n")
            return 2
        given[key] = value
    job_key = given.pop("job", "")
    try:
        bundle = load_bundle(project_root(), current_target(), strict=False)
        job = bundle.job(job_key)
        check_job_parameters(job, job_parameters(job.spec, given), bundle.root, bundle.target)
    except (ParameterError, BundleError, ConfigError) as err:
        sys.stderr.write(f"{err}\n")
        return 2
    sys.stdout.write(f"job {job.key}: every parameter is valid for target {bundle.target}\n")
    return 0

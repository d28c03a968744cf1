"""A small bundle made by the tests: notebooks, a job with dependencies, parameters and retries."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]


def write_notebook(path: Path, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(c).strip()) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


JOB = """
resources:
  jobs:
    demo:
      name: demo-${bundle.target}
      parameters:
        - name: rows
          default: "5"
      job_clusters:
        - job_cluster_key: main
          new_cluster:
            spark_version: ${var.spark_version}
            num_workers: 0
            spark_env_vars:
              REFARCH_ROOT: ${workspace.file_path}
              DEMO_TARGET: ${bundle.target}
      tasks:
        - task_key: make
          job_cluster_key: main
          notebook_task:
            notebook_path: ../notebooks/make.ipynb
            base_parameters:
              table: demo_numbers
        - task_key: flaky
          job_cluster_key: main
          max_retries: 2
          notebook_task:
            notebook_path: ../notebooks/flaky.ipynb
        - task_key: total
          job_cluster_key: main
          depends_on:
            - task_key: make
            - task_key: flaky
          notebook_task:
            notebook_path: ../notebooks/total.ipynb
            base_parameters:
              table: demo_numbers
              run: "{{job.run_id}}"
        - task_key: listing
          depends_on:
            - task_key: total
          python_wheel_task:
            package_name: refarch
            entry_point: refarch
            parameters: ["job", "list"]
    broken:
      name: broken
      tasks:
        - task_key: fine
          notebook_task:
            notebook_path: ../notebooks/fine.ipynb
        - task_key: boom
          max_retries: 1
          depends_on:
            - task_key: fine
          notebook_task:
            notebook_path: ../notebooks/boom.ipynb
        - task_key: after
          depends_on:
            - task_key: boom
          notebook_task:
            notebook_path: ../notebooks/fine.ipynb
"""

BOOT = """
import os
from refarch.runtime import Param, TableParam, bootstrap
ctx = bootstrap(params=[Param("rows", 3, min=1), TableParam("table", "t")])
"""


@pytest.fixture()
def demo_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(REPO / "databricks.yml", tmp_path / "databricks.yml")
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "demo.job.yml").write_text(JOB)
    nbs = tmp_path / "notebooks"
    write_notebook(
        nbs / "make.ipynb",
        "%pip install something-that-is-not-needed-locally",
        BOOT,
        """
        assert os.environ["DEMO_TARGET"] == "local"
        df = ctx.spark.range(ctx.params.rows).toDF("n")
        ctx.tables.write(df, ctx.params.table)
        ctx.set_task_value("written", ctx.params.rows)
        """,
    )
    write_notebook(
        nbs / "flaky.ipynb",
        """
        from pathlib import Path
        marker = Path("flaky.marker")
        if not marker.exists():
            marker.write_text("first attempt")
            raise RuntimeError("transient failure")
        """,
    )
    write_notebook(nbs / "helpers.ipynb", "def double(x):\n    return 2 * x")
    write_notebook(
        nbs / "total.ipynb",
        BOOT + "\nfrom refarch.runtime import Param",
        "%run ./helpers",
        """
        from pyspark.sql import functions as F
        total = ctx.tables.read(ctx.params.table).agg(F.sum("n")).first()[0]
        assert ctx.get_task_value("make", "written") == ctx.params.rows
        ctx.tables.write(ctx.spark.createDataFrame([(double(total),)], "total long"), "demo_total")
        ctx.exit(str(double(total)))
        raise AssertionError("exit() must end the notebook")
        """,
    )
    write_notebook(nbs / "fine.ipynb", "x = 1")
    write_notebook(nbs / "boom.ipynb", "x = 1", "raise ValueError('the input is rotten')")
    monkeypatch.setenv("REFARCH_ROOT", str(tmp_path))
    return tmp_path

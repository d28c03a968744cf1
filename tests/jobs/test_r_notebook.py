"""R notebook tasks: Databricks' R source format run with Rscript, widgets from the job, errors naming the cell."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from refarch.jobs.notebook_exec import NotebookError
from refarch.jobs.r_notebook import is_magic, is_r_notebook, read_r_cells, run_r_notebook, widgets_read
from refarch.jobs.runner import run_job

SEP = "\n\n# COMMAND ----------\n\n"


def write_notebook(path: Path, *cells: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(c).strip()) for c in cells]
    nbformat.write(nb, str(path))


def r_notebook(path: Path, *cells: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Databricks notebook source\n" + SEP.join(textwrap.dedent(c).strip() for c in cells) + "\n")
    return path


JOB = """
resources:
  jobs:
    rdemo:
      name: rdemo
      parameters:
        - name: rows
          default: "5"
      tasks:
        - task_key: py
          notebook_task:
            notebook_path: ../notebooks/py_sets.ipynb
        - task_key: r
          depends_on:
            - task_key: py
          notebook_task:
            notebook_path: ../notebooks/r_echo.r
            base_parameters:
              greeting: 'héllo "quoted" $x \\n'
              from_python: "{{tasks.py.values.word}}"
              rows: "1"
        - task_key: boom
          depends_on:
            - task_key: r
          notebook_task:
            notebook_path: ../notebooks/r_boom.r
        - task_key: after
          depends_on:
            - task_key: boom
          notebook_task:
            notebook_path: ../notebooks/r_echo.r
    rslow:
      name: rslow
      tasks:
        - task_key: sleepy
          timeout_seconds: 2
          notebook_task:
            notebook_path: ../notebooks/r_sleepy.r
"""


@pytest.fixture()
def r_bundle(demo_bundle: Path) -> Path:
    (demo_bundle / "jobs" / "rdemo.job.yml").write_text(JOB)
    nbs = demo_bundle / "notebooks"
    write_notebook(
        nbs / "py_sets.ipynb",
        """
        from refarch.runtime import bootstrap
        ctx = bootstrap(params=[], start_spark=False)
        ctx.set_task_value("word", "from-python")
        """,
    )
    r_notebook(
        nbs / "r_echo.r",
        "# MAGIC %md\n# MAGIC # echo\n# MAGIC the widgets, written to a file",
        """
        dbutils.widgets.text("rows", "1")
        dbutils.widgets.text("greeting", "hello")
        dbutils.widgets.text("from_python", "")
        rows <- as.integer(dbutils.widgets.get("rows"))
        writeLines(c(dbutils.widgets.get("greeting"), dbutils.widgets.get("from_python"), rows * 2), "r_echo.out")
        """,
        "# MAGIC %python\n# MAGIC print('not R: skipped locally')",
        """
        dbutils.notebook.exit(paste("done", rows))
        stop("exit must end the notebook")
        """,
    )
    r_notebook(nbs / "r_boom.r", "# MAGIC %md\n# MAGIC # boom", "x <- 1", 'if (x == 1) stop("the input is rotten")')
    r_notebook(nbs / "r_sleepy.r", "Sys.sleep(30)")
    return demo_bundle


def test_an_r_task_gets_job_parameters_base_parameters_and_task_values(r_bundle):
    result = run_job("rdemo", root=r_bundle)
    status = {t.task_key: t.status for t in result.tasks}
    assert status == {"py": "SUCCESS", "r": "SUCCESS", "boom": "FAILED", "after": "SKIPPED"}
    r = next(t for t in result.tasks if t.task_key == "r")
    assert r.exit_value == "done 5"  # the job parameter (5) wins over the base parameter (1), as on Databricks
    lines = (r_bundle / "notebooks" / "r_echo.out").read_text(encoding="utf-8").splitlines()
    assert lines == ['héllo "quoted" $x \\n', "from-python", "10"]  # any text reaches R as is


def test_an_r_error_fails_the_task_naming_notebook_and_cell(r_bundle):
    result = run_job("rdemo", root=r_bundle)
    (failed,) = result.failed
    assert failed.task_key == "boom"
    assert failed.error == "r_boom.r cell 3: R error: the input is rotten"
    assert "task 'boom' failed: r_boom.r cell 3: R error: the input is rotten" in result.summary()


def test_a_cell_that_does_not_parse_and_an_unknown_widget_are_named(tmp_path):
    nb = r_notebook(tmp_path / "bad.r", "x <- 1", "y <- (1 +")
    with pytest.raises(NotebookError, match=r"^bad.r cell 2: R error: .*unexpected end of input"):
        run_r_notebook(nb, {})
    nb = r_notebook(tmp_path / "widget.r", 'dbutils.widgets.get("nope")')
    with pytest.raises(NotebookError, match=r"^widget.r cell 1: R error: widget 'nope' was neither declared nor given"):
        run_r_notebook(nb, {"other": "1"})


def test_the_task_timeout_stops_rscript(r_bundle):
    result = run_job("rslow", root=r_bundle)
    (task,) = result.tasks
    assert task.status == "FAILED" and task.error == "r_sleepy.r: timed out after 2 s (timeout_seconds)"
    assert task.seconds < 20


def test_the_source_format_is_read_as_databricks_writes_it(tmp_path):
    nb = r_notebook(
        tmp_path / "n.r",
        "# MAGIC %md\n# MAGIC # title",
        'dbutils.widgets.text("a", "1")\nx <- dbutils.widgets.get(name = "b")',
        "# MAGIC %sh\n# MAGIC ls",
        "y <- 2  # MAGIC in a comment is R",
    )
    cells = read_r_cells(nb)
    assert len(cells) == 4 and [is_magic(c) for c in cells] == [True, False, True, False]
    assert widgets_read(nb) == {"a", "b"}
    assert is_r_notebook(nb)
    plain = tmp_path / "plain.r"
    plain.write_text("x <- 1\n")
    assert not is_r_notebook(plain)
    with pytest.raises(NotebookError, match="not a Databricks R notebook"):
        read_r_cells(plain)


def test_bundle_validate_takes_r_notebooks(r_bundle):
    from refarch.jobs.validate import is_notebook

    assert is_notebook(r_bundle / "notebooks" / "r_echo.r")
    (r_bundle / "notebooks" / "not_a_notebook.r").write_text("x <- 1\n")
    assert not is_notebook(r_bundle / "notebooks" / "not_a_notebook.r")

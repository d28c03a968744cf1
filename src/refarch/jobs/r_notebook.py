"""Run an R notebook task with Rscript, the way a Databricks R notebook task runs it.

The format is Databricks' R source format: a `.r` file whose first line is `# Databricks notebook
source`, cells separated by `# COMMAND ----------` lines, Markdown (and other languages' magic
cells) as `# MAGIC` comment lines. It was picked over an .ipynb with an R kernel because it is what
Databricks itself exports and imports for R notebooks (the bundle deploys it as an R notebook, no
kernel metadata to match), it diffs as plain R, has no outputs to strip, and runs without IRkernel
or Jupyter: outside Databricks every cell is plain R.

Cells run in order in R's global environment, the notebook's folder as working directory. Before
the first cell a small `dbutils` shim is attached: `dbutils.widgets.text/dropdown/combobox/
multiselect/get/remove/removeAll` fed by the task's widget values (base parameters, then the job
parameters, which win, as on Databricks), `dbutils.notebook.exit(value)` and `display()`. On
Databricks the same notebook runs unchanged: `dbutils` is there already. An R error (or a cell that
does not parse) stops the notebook and fails the task with a NotebookError naming the notebook and
its cell (cells are numbered as Databricks numbers them, Markdown cells included).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from refarch.jobs.notebook_exec import NotebookError

log = logging.getLogger(__name__)

HEADER = "# Databricks notebook source"
SEPARATOR = re.compile(r"^# COMMAND -{5,}[ \t]*$", re.M)
R_SUFFIXES = (".r", ".R")
# dbutils.widgets.<kind>("name", ...) / dbutils.widgets.get("name"): the widgets a notebook reads
_WIDGET_CALL = re.compile(
    r"""dbutils\.widgets\.(text|dropdown|combobox|multiselect|get)\(\s*(?:name\s*=\s*)?["']([^"']+)["']"""
)

_SHIM = r"""
.refarch_unhex <- function(h) {
  if (!nzchar(h)) return("")
  rawToChar(as.raw(strtoi(substring(h, seq(1, nchar(h), 2), seq(2, nchar(h), 2)), 16L)))
}
local({
  shim <- new.env()
  shim$.given <- list(%(given)s)
  shim$.declared <- list()
  declare <- function(name, defaultValue = "", label = NULL) {
    shim$.declared[[name]] <- as.character(defaultValue)
    invisible(NULL)
  }
  shim$dbutils.widgets.text <- declare
  shim$dbutils.widgets.dropdown <- function(name, defaultValue, choices, label = NULL) declare(name, defaultValue)
  shim$dbutils.widgets.combobox <- function(name, defaultValue, choices, label = NULL) declare(name, defaultValue)
  shim$dbutils.widgets.multiselect <- function(name, defaultValue, choices, label = NULL) declare(name, defaultValue)
  shim$dbutils.widgets.get <- function(name) {
    if (!is.null(shim$.given[[name]])) return(shim$.given[[name]])
    if (!is.null(shim$.declared[[name]])) return(shim$.declared[[name]])
    stop(sprintf("widget '%%s' was neither declared nor given", name), call. = FALSE)
  }
  shim$dbutils.widgets.remove <- function(name) { shim$.declared[[name]] <- NULL; invisible(NULL) }
  shim$dbutils.widgets.removeAll <- function() { shim$.declared <- list(); invisible(NULL) }
  shim$dbutils.notebook.exit <- function(value) {
    stop(structure(class = c("refarch_notebook_exit", "condition"),
                   list(message = "dbutils.notebook.exit", call = NULL, value = as.character(value))))
  }
  shim$display <- function(x, ...) { print(utils::head(as.data.frame(x), 20L)); invisible(x) }
  shim$displayHTML <- function(html) { cat(html, "\n"); invisible(NULL) }
  attach(shim, name = "refarch:dbutils", warn.conflicts = FALSE)
})
.refarch_cells <- c(%(cells)s)
.refarch_result <- %(result)s
local({
  report <- function(...) writeLines(c(...), .refarch_result, useBytes = TRUE)
  for (i in seq_along(.refarch_cells)) {
    cell <- .refarch_cells[[i]]
    if (!nzchar(cell)) next
    status <- tryCatch({
      source(cell, local = globalenv(), print.eval = TRUE, keep.source = FALSE, encoding = "UTF-8")
      "ok"
    }, refarch_notebook_exit = function(e) {
      report("exit", as.character(i), e$value)
      "exit"
    }, error = function(e) {
      call <- conditionCall(e)
      where <- if (is.null(call) || identical(call[[1]], quote(eval))) "" else paste0("in ", deparse(call)[1], ": ")
      report("error", as.character(i), paste0(where, conditionMessage(e)))
      "error"
    })
    if (status != "ok") break
  }
  if (!file.exists(.refarch_result)) report("ok")
})
"""


def is_r_notebook(path: Path) -> bool:
    """An R notebook in Databricks source format (a `.r` file starting with the header line)."""
    if path.suffix not in R_SUFFIXES or not path.is_file():
        return False
    with path.open(encoding="utf-8") as fh:
        return fh.readline().strip() == HEADER


def read_r_cells(path: Path) -> list[str]:
    """The notebook's cells in order (Markdown/magic cells included, as Databricks numbers them)."""
    text = path.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    if first.strip() != HEADER:
        raise NotebookError(f"{path.name}: not a Databricks R notebook (the first line must be '{HEADER}')")
    return [cell.strip("\n") for cell in SEPARATOR.split(rest)]


def is_magic(cell: str) -> bool:
    """A cell of Markdown or another language: every non-blank line is `# MAGIC ...`."""
    lines = [line for line in cell.splitlines() if line.strip()]
    return bool(lines) and all(line.startswith("# MAGIC") for line in lines)


def widgets_read(path: Path) -> set[str]:
    """The widget names an R notebook declares or reads through dbutils.widgets (for the contract tests)."""
    return {m.group(2) for cell in read_r_cells(path) if not is_magic(cell) for m in _WIDGET_CALL.finditer(cell)}


def _hex(text: str) -> str:
    return text.encode("utf-8").hex()


def _r_string(text: str) -> str:
    """An R expression for any text (hex-encoded UTF-8: no quoting or escaping to get wrong)."""
    return f'.refarch_unhex("{_hex(text)}")'


def _driver(cell_files: list[str], widgets: Mapping[str, str], result: Path) -> str:
    given = ", ".join(f'"{name}" = {_r_string(value)}' for name, value in widgets.items() if _safe_name(name))
    cells = ", ".join(_r_string(f) if f else '""' for f in cell_files)
    return _SHIM % {"given": given, "cells": cells, "result": _r_string(str(result))}


def _safe_name(name: str) -> bool:
    if re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        return True
    log.warning("widget name %r skipped: not passed to R", name)
    return False


def rscript() -> str:
    found = shutil.which("Rscript")
    if found is None:
        raise NotebookError("Rscript is not installed: apt-get install -y r-base-core (make run installs it)")
    return found


def run_r_notebook(path: Path, widgets: Mapping[str, str], timeout: float | None = None) -> str | None:
    """Run every cell of the R notebook with these widget values; returns dbutils.notebook.exit's value.

    Raises NotebookError naming the cell of an R error, or the time limit (the task's timeout_seconds).
    """
    path = path.resolve()
    cells = read_r_cells(path)
    with tempfile.TemporaryDirectory(prefix="refarch-r-") as tmp:
        folder = Path(tmp)
        files = []
        for index, cell in enumerate(cells, start=1):
            if not cell.strip() or is_magic(cell):
                if cell.strip():
                    log.info(
                        "%s cell %d: skipped %s",
                        path.name,
                        index,
                        cell.split()[2] if len(cell.split()) > 2 else "magic",
                    )
                files.append("")
                continue
            file = folder / f"cell_{index:03d}.R"
            file.write_text(cell + "\n", encoding="utf-8")
            files.append(str(file))
        result = folder / "result"
        driver = folder / "driver.R"
        driver.write_text(_driver(files, widgets, result), encoding="utf-8")
        code = _run(rscript(), driver, path, timeout)
        lines = result.read_text(encoding="utf-8").splitlines() if result.is_file() else []
    status = lines[0] if lines else ""
    if status == "ok" and code == 0:
        return None
    if status == "exit":
        return "\n".join(lines[2:])
    if status == "error":
        message = "\n".join(lines[2:]).strip()
        raise NotebookError(f"{path.name} cell {lines[1]}: R error: {message}")
    raise NotebookError(f"{path.name}: Rscript exited with {code} before finishing its cells")


def _run(binary: str, driver: Path, notebook: Path, timeout: float | None) -> int:
    """Rscript in the notebook's folder; its output goes to the log line by line, as it comes."""
    proc = subprocess.Popen(
        [binary, "--no-save", "--no-restore", str(driver)],
        cwd=notebook.parent,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    )

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.info("%s | %s", notebook.name, line.rstrip())

    reader = threading.Thread(target=pump, name="rscript-output", daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        reader.join(timeout=5)
        raise NotebookError(f"{notebook.name}: timed out after {timeout:.0f} s (timeout_seconds)") from None
    reader.join(timeout=5)
    return code

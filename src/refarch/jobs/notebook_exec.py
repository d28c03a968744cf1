"""Execute an .ipynb in-process, the way a Databricks notebook task would.

Code cells run in one namespace; `%pip`, `%sh`, `%md` and other magic cells are
skipped (the wheel is already installed), `%run ./other` runs another notebook in the
same namespace, and the working directory is the notebook's folder, as on Databricks.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat

if TYPE_CHECKING:
    from refarch.runtime.params import Notebook

log = logging.getLogger(__name__)

_SKIPPED_MAGICS = ("%pip", "%sh", "%md", "%fs", "%sql", "%scala", "%r", "%conda", "%config", "%matplotlib")


class NotebookError(RuntimeError):
    """A notebook cell raised; the message names notebook and cell."""


def _display(obj: Any = None, *args: Any, **kwargs: Any) -> None:
    """Databricks' `display` off Databricks: log the first rows."""
    if hasattr(obj, "limit") and hasattr(obj, "toPandas"):
        obj = obj.limit(20).toPandas()
    log.info("display:\n%s", obj)


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def read_code_cells(path: Path) -> list[str]:
    nb = nbformat.read(str(path), as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _resolve_notebook(ref: str, base: Path) -> Path:
    ref = ref.strip().strip("\"'")
    candidate = (base / ref).resolve()
    for p in (candidate, candidate.with_name(candidate.name + ".ipynb")):
        if p.is_file():
            return p
    raise NotebookError(f"%run {ref}: no notebook at {candidate}(.ipynb)")


def _calls_bootstrap(source: str) -> bool:
    """Whether a cell calls `bootstrap(...)`: only such a cell is run to read a declaration."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "bootstrap":
                return True
    return False


def declaration_of(path: Path) -> Notebook:
    """The declaration a notebook bootstraps with: its first code cell run in declare-only mode.

    Nothing starts (no config, Spark or MLflow): `bootstrap` raises as soon as it is called.
    """
    from refarch.runtime.notebook import Declared, declare_only

    cells = [c for c in read_code_cells(path) if c.strip() and not c.lstrip().startswith("%")]
    if not cells or not _calls_bootstrap(cells[0]):
        raise NotebookError(f"{path.name}: the first code cell does not call refarch.runtime.bootstrap")
    with declare_only(), _cwd(path.parent):
        try:
            exec(compile(cells[0], f"{path.name} [cell 1]", "exec"), {"__name__": "__declare__"})
        except Declared as found:
            return found.notebook
        except Exception as err:
            raise NotebookError(f"{path.name} cell 1: {type(err).__name__}: {err}") from err
    raise NotebookError(f"{path.name}: the first code cell does not call refarch.runtime.bootstrap")


def run_notebook(path: Path, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every code cell of `path`; returns the namespace. Raises NotebookError naming the cell."""
    path = path.resolve()
    ns = namespace if namespace is not None else {"__name__": "__main__", "display": _display}
    ns.setdefault("display", _display)
    os.environ.setdefault("MPLBACKEND", "Agg")
    with _cwd(path.parent):
        for index, source in enumerate(read_code_cells(path), start=1):
            stripped = source.lstrip()
            if not stripped:
                continue
            if stripped.startswith("%run"):
                _, _, ref = stripped.partition(" ")
                run_notebook(_resolve_notebook(ref.splitlines()[0], path.parent), ns)
                continue
            if stripped.startswith(_SKIPPED_MAGICS) or stripped.startswith("%%"):
                log.info("%s cell %d: skipped magic %s", path.name, index, stripped.split()[0])
                continue
            code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
            try:
                exec(compile(code, f"{path.name} [cell {index}]", "exec"), ns)
            except Exception as err:
                from refarch.runtime.notebook import NotebookExit

                if isinstance(err, NotebookExit):
                    raise
                raise NotebookError(f"{path.name} cell {index}: {type(err).__name__}: {err}") from err
    return ns

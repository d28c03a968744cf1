"""Every committed notebook is stripped and bootstraps with its declaration from the wheel.

R notebooks (Databricks source format, `.r`) cannot call `bootstrap`: they must read, through
`dbutils.widgets`, exactly the parameters their declaration in refarch.<pipeline>.params lists,
since that declaration is what the job check holds their values to.
"""

import importlib
from pathlib import Path

import nbformat
import pytest

from refarch.jobs.notebook_exec import declaration_of
from refarch.jobs.r_notebook import HEADER, widgets_read
from refarch.runtime.params import Notebook

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").rglob("*.ipynb"))
IDS = [str(p.relative_to(REPO)) for p in NOTEBOOKS]
R_NOTEBOOKS = sorted((REPO / "notebooks").rglob("*.r"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_stripped_and_bootstraps(path: Path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "outputs not stripped"
    first = next(c.source for c in code if not c.source.lstrip().startswith("%"))
    assert "bootstrap(" in first or first.lstrip().startswith("%run"), "the first code cell must call bootstrap"
    text = "\n".join(c.source for c in code)
    assert "/work/" not in text and ".refarch/" not in text, "local-only paths in a notebook"


def _declarations(pipeline: str) -> dict[str, Notebook]:
    module = importlib.import_module(f"refarch.{pipeline}.params")
    return {v.name: v for v in vars(module).values() if isinstance(v, Notebook)}


PYTHON_NOTEBOOKS = [p for p in NOTEBOOKS if p.parent.parent.name == "notebooks"]


@pytest.mark.parametrize("path", PYTHON_NOTEBOOKS, ids=[str(p.relative_to(REPO)) for p in PYTHON_NOTEBOOKS])
def test_notebook_bootstraps_with_its_declaration(path: Path):
    """The job check reads `refarch.<pipeline>.params`; the notebook must use that very object."""
    declared = declaration_of(path)
    assert (declared.pipeline, declared.name) == (path.parent.name, path.stem)
    assert _declarations(path.parent.name).get(path.stem) is declared, "not the object from refarch.<pipeline>.params"


@pytest.mark.parametrize("path", R_NOTEBOOKS, ids=[str(p.relative_to(REPO)) for p in R_NOTEBOOKS])
def test_r_notebook_reads_exactly_its_declared_widgets(path: Path):
    text = path.read_text()
    assert text.startswith(HEADER + "\n"), "not in Databricks' R source format"
    declared = _declarations(path.parent.name).get(path.stem)
    assert declared is not None, f"refarch.{path.parent.name}.params declares no {path.stem}"
    assert declared.language == "r" and (REPO / declared.path) == path
    assert widgets_read(path) == {p.name for p in declared.params}, "widgets read != parameters declared"
    assert "/work/" not in text and ".refarch/" not in text, "local-only paths in a notebook"


@pytest.mark.parametrize("pipeline", sorted({p.parent.name for p in PYTHON_NOTEBOOKS}))
def test_every_declaration_has_its_notebook(pipeline: str):
    for name, notebook in _declarations(pipeline).items():
        assert (REPO / notebook.path).is_file(), f"refarch.{pipeline}.params declares {name} with no notebook"


def test_no_table_regex_in_notebooks():
    for path in NOTEBOOKS + R_NOTEBOOKS:
        assert "[A-Za-z_]" not in path.read_text(), f"{path.name}: use TableParam, not a table regex"


def test_numbered_notebooks_are_in_order():
    for folder in sorted({p.parent for p in NOTEBOOKS + R_NOTEBOOKS}):
        numbered = sorted(p.name for p in [*folder.glob("[0-9][0-9]_*.ipynb"), *folder.glob("[0-9][0-9]_*.r")])
        numbers = [int(n[:2]) for n in numbered]
        assert numbers == sorted(set(numbers)), f"{folder.name}: duplicate or unordered numbers {numbered}"

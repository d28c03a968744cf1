"""Every committed notebook is stripped and starts with the bootstrap cell."""

from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").rglob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(REPO)) for p in NOTEBOOKS])
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


def test_numbered_notebooks_are_in_order():
    for folder in sorted({p.parent for p in NOTEBOOKS}):
        numbered = [p.name for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))]
        numbers = [int(n[:2]) for n in numbered]
        assert numbers == sorted(set(numbers)), f"{folder.name}: duplicate or unordered numbers {numbered}"

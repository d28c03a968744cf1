"""The wheel's core requirements fit Databricks Runtime 17.3 LTS ML as shipped: nothing is upgraded or downgraded."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
RUNTIME_FILE = REPO / "requirements" / "dbr-17.3-lts-ml.txt"
_SHIPPED = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)")
_NOT_SHIPPED = re.compile(r"^([A-Za-z0-9_.-]+)\s+\(not shipped")


def runtime_libraries(path: Path = RUNTIME_FILE) -> dict[str, Version | None]:
    """name -> version the runtime ships, or None for a library it does not ship."""
    out: dict[str, Version | None] = {}
    for line in path.read_text().splitlines():
        if m := _SHIPPED.match(line):
            out[canonicalize_name(m.group(1))] = Version(m.group(2))
        elif m := _NOT_SHIPPED.match(line):
            out[canonicalize_name(m.group(1))] = None
    return out


def setup_list(name: str) -> list[str]:
    """A list literal of setup.py (CORE, LOCAL, ...), read without running setup()."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise KeyError(name)


def conflicts(requirements: list[str], runtime: dict[str, Version | None]) -> list[str]:
    """Requirements that would make pip change a library the runtime ships."""
    out = []
    for text in requirements:
        req = Requirement(text)
        shipped = runtime.get(canonicalize_name(req.name))
        if shipped is not None and not req.specifier.contains(shipped, prereleases=True):
            out.append(f"{text} (the runtime ships {req.name} {shipped})")
    return out


def test_the_runtime_list_names_its_source_and_covers_the_core():
    text = RUNTIME_FILE.read_text()
    assert "learn.microsoft.com/azure/databricks/release-notes/runtime/17.3lts-ml" in text
    runtime = runtime_libraries()
    assert len(runtime) >= 30
    missing = [r for r in setup_list("CORE") if canonicalize_name(Requirement(r).name) not in runtime]
    assert missing == [], f"list what the runtime ships (or '(not shipped)') for {missing}"


def test_core_requirements_change_nothing_the_runtime_ships():
    assert conflicts(setup_list("CORE"), runtime_libraries()) == []


@pytest.mark.parametrize(
    "pin",
    ["mlflow-skinny==3.17.2", "pandas>=2.3", "scikit-learn>=1.7", "numpy<2", "pydantic>=2.11", "databricks-sdk>=0.50"],
)
def test_a_pin_that_conflicts_with_the_runtime_is_caught(pin):
    assert conflicts([pin], runtime_libraries()) != []


def test_added_libraries_and_compatible_ranges_pass():
    runtime = runtime_libraries()
    assert conflicts(["redis>=5.0", "mlflow-skinny>=3.0.1,<4", "torch>=2.7"], runtime) == []


def test_jobs_run_the_runtime_that_the_list_describes_and_local_spark_matches_it():
    variables = yaml.safe_load((REPO / "databricks.yml").read_text())["variables"]
    assert variables["spark_version"]["default"] == "17.3.x-cpu-ml-scala2.13"
    assert "17.3.x-cpu-ml-scala2.13" in RUNTIME_FILE.read_text()
    pyspark = next(Requirement(r) for r in setup_list("LOCAL") if r.startswith("pyspark"))
    (pinned,) = [Version(s.version) for s in pyspark.specifier]
    assert (pinned.major, pinned.minor) == (4, 0), "local Spark must match the runtime's Spark 4.0"

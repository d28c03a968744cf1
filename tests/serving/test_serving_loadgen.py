"""The open-loop load generator of benchmarks/serving_load.py keeps to its rate and measures what it should."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serving_load.py"


def test_the_generator_alone_keeps_its_rate():
    cmd = [sys.executable, str(SCRIPT), "--only", "generator", "--rates", "500,2000", "--rate-duration", "3"]
    done = subprocess.run([*cmd, "--gen-connections", "16"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = re.findall(r"^generator check\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)", done.stdout, re.M)
    assert [int(r[0]) for r in rows] == [500, 2000], done.stdout
    for rate, achieved, p50, p99, p999, errors in rows:
        assert abs(int(achieved) - int(rate)) <= 0.05 * int(rate), done.stdout  # answers per second: the rate
        assert int(errors) == 0
        assert 0 < float(p50) <= float(p99) <= float(p999)
        assert float(p50) < 5.0  # a no-op server answers in well under a millisecond: no built-in offset

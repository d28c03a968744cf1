"""What the load benchmarks share: servers under test run in their own sessions, waited for and stopped here.

Kept beside the benchmarks, not in the wheel, so that a benchmark measures another checkout's code
(PYTHONPATH=<checkout>/src) with the same harness.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def wait_ready(url: str, procs: list[subprocess.Popen], timeout: float = 120.0) -> None:
    """Poll `url` until it answers 200; fail at once if a server process exits first."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a server exited before {url} was ready")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready within {timeout:.0f} s")


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each server's own session (it and its workers), SIGKILL what is left after 20 s."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def session_cpu_seconds(sids: Iterable[int]) -> float:
    """CPU time (user + system) of every live process in these sessions: the servers and their workers."""
    wanted = set(sids)
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in wanted:  # fields after the name: state ppid pgrp session utime(11) stime(12)
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def wrk_script(path: Path, bodies: list[str], api_key: str | None, done: str = "") -> None:
    """A wrk Lua script that cycles through pre-built `POST /invocations` requests, `done` (Lua) appended."""
    headers = '["Content-Type"] = "application/json"' + (f', ["X-API-Key"] = "{api_key}"' if api_key else "")
    lua_bodies = ",\n".join("[==[" + b + "]==]" for b in bodies)
    path.write_text(
        f"""
local bodies = {{
{lua_bodies}
}}
local requests = {{}}
local i = 0
init = function(args)
  for n, b in ipairs(bodies) do
    requests[n] = wrk.format("POST", "/invocations", {{{headers}}}, b)
  end
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
{done}"""
    )

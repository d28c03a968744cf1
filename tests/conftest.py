"""One Spark session and one local state folder for the whole test run."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Test the code of this checkout, not another copy of refarch on the path (a second worktree)."""
    import refarch

    here = Path(refarch.__file__).resolve()
    if not here.is_relative_to(REPO / "src"):
        pytest.exit(f"refarch is imported from {here}, not from {REPO / 'src'}: set PYTHONPATH={REPO / 'src'}", 2)


@pytest.fixture(scope="session", autouse=True)
def refarch_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point the local target at a throw-away folder: warehouse, MLflow db, caches."""
    home = tmp_path_factory.mktemp("refarch-home")
    saved = {k: os.environ.get(k) for k in ("REFARCH_HOME", "REFARCH_ROOT", "REFARCH_TARGET")}
    os.environ.update(REFARCH_HOME=str(home), REFARCH_ROOT=str(REPO), REFARCH_TARGET="local")
    yield home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def config(refarch_home: Path):
    from refarch.runtime.config import load_config

    return load_config()


@pytest.fixture(scope="session")
def spark(config):
    """The one local Spark session of the run, with few partitions for tiny data."""
    from refarch.runtime.spark import get_spark

    session = get_spark(config)
    session.conf.set("spark.sql.shuffle.partitions", "2")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tables(spark, config):
    from refarch.runtime.tables import Tables

    return Tables(spark, config)


class PythonWithoutRefarch:
    """A Python where refarch cannot be imported, to run a script that loads a model the way Model Serving would."""

    def __init__(self, python: Path) -> None:
        self.python = python

    def last_line(self, script: str, cwd: Path, env: dict[str, str] | None = None) -> str:
        """Run `script` (dedented) in `cwd`; its last line of output. A failure shows the script's stderr."""
        import subprocess
        import textwrap

        done = subprocess.run(
            [str(self.python), "-c", textwrap.dedent(script)], capture_output=True, text=True, cwd=cwd, env=env
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.strip().splitlines()[-1]

    @staticmethod
    def registry_env(**extra: str) -> dict[str, str]:
        """This process' environment for a script that loads from the registry: refarch's own settings left
        out, this process' MLflow tracking and registry URIs in, then `extra`."""
        import os

        import mlflow

        env = {k: v for k, v in os.environ.items() if not k.startswith(("REFARCH_", "PYTHONPATH"))}
        return (
            env
            | {"MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(), "MLFLOW_REGISTRY_URI": mlflow.get_registry_uri()}
            | extra
        )


@pytest.fixture(scope="session")
def python_without_refarch(tmp_path_factory: pytest.TempPathFactory) -> PythonWithoutRefarch:
    """A Python that has this venv's libraries but cannot import refarch (as on Model Serving).

    A fresh venv whose site-packages points at ours through a plain path entry: the editable
    install's own .pth file (what makes refarch importable) is not processed there.
    """
    import site
    import subprocess
    import sys
    import sysconfig

    env = tmp_path_factory.mktemp("no-refarch") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()] or [sysconfig.get_paths()["purelib"]]
    (Path(purelib) / "borrowed.pth").write_text("\n".join(ours) + "\n")
    # unset $PYTHONPATH too: a worktree's src/ on it would make refarch importable again
    isolated = env / "bin" / "python-without-pythonpath"
    isolated.write_text(f'#!/bin/sh\nunset PYTHONPATH\nexec "{python}" "$@"\n')
    isolated.chmod(0o755)
    python = isolated
    probe = subprocess.run(
        [str(python), "-c", "import mlflow, sklearn; import refarch"], cwd=env, capture_output=True, text=True
    )
    assert "No module named 'refarch'" in probe.stderr, probe.stderr
    return PythonWithoutRefarch(python)


class ServerThread:
    """uvicorn serving an app on a free loopback port, in a thread of the test process.

    uvicorn gets what `refarch serve` gives it (the limited protocol, keep-alive, ...) for the
    app's own settings, except the logging config: the test process' logging stays as pytest set it.
    `with ServerThread(app)` waits until /ready answers 200 (wait=False: until it answers at all).
    """

    def __init__(self, app, wait: bool = True) -> None:
        import threading

        import uvicorn

        from refarch.runtime.blob import free_port
        from refarch.serving.cli import uvicorn_options

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.wait = wait
        options = {**uvicorn_options(app.state.refarch.settings, in_process=True), "log_config": None}
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def wait_for(self, path: str, done, seconds: float = 30.0):
        """Poll `path` until `done(response)`; the last response, or an error after `seconds`."""
        import httpx

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                response = httpx.get(self.url + path, timeout=2)
                if done(response):
                    return response
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{path} did not reach the expected state within {seconds:.0f} s")

    def __enter__(self) -> ServerThread:
        self.thread.start()
        try:
            self.wait_for("/ready" if self.wait else "/health", lambda r: r.status_code == 200 or not self.wait)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="session")
def server_thread() -> type[ServerThread]:
    """The ServerThread class (fixtures, not imports: `conftest` is not an importable module name)."""
    return ServerThread

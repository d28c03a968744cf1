"""One embedded R per process, owned by one thread: every R call of the process is serialised through it.

R is single-threaded and keeps global state, so the process starts R once (rpy2, in-process) in a
thread of its own and hands it work through a queue; callers block on a future (a server runs them
in its thread pool, so a slow R call holds no event loop and no health check). Every R object is
made and dropped in that thread: rpy2 releases R objects when their Python proxies die, which must
not happen while another thread is inside R.

Predictions waiting in the queue while R is busy are combined into one R call (up to
`max_rows`). It is what makes a forest cheap to serve: ranger's predict rebuilds the forest in C++
on every call, which costs the same for 1 row or 100, so 30 waiting single-row requests cost one
call instead of 30. If a combined call fails, each request is retried alone, so one request's
failure is never another's.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# R helpers, defined once in an environment of their own (nothing is put in R's global environment).
_HELPERS = r"""
local({
  load_model <- function(path, packages) {
    for (p in packages) suppressPackageStartupMessages(library(p, character.only = TRUE))
    readRDS(path)
  }
  versions <- function(packages) {
    vapply(packages, function(p) as.character(utils::packageVersion(p)), "")
  }
  # A function scoring one data frame built from plain vectors: factor columns get their levels
  # and class here (structure() sets what R's method dispatch reads), then predict(model, newdata).
  make_predictor <- function(model, factors, args) {
    force(model); force(factors); force(args)
    function(cols, n) {
      for (name in names(factors)) {
        cols[[name]] <- structure(cols[[name]], levels = factors[[name]]$levels, class = factors[[name]]$class)
      }
      newdata <- structure(cols, class = "data.frame", row.names = c(NA_integer_, -n))
      out <- do.call(stats::predict, c(list(quote(model), quote(newdata)), args))
      if (is.list(out) && !is.null(out$predictions)) out <- out$predictions  # ranger
      out <- as.vector(out)
      if (!is.numeric(out) || length(out) != n) {
        stop(sprintf("predict returned %d value(s) of type %s for %d row(s)", length(out), class(out)[1], n))
      }
      as.double(out)
    }
  }
  environment()
})
"""


class RError(RuntimeError):
    """An error raised by R (its message), or R that could not start."""


@dataclass
class _Job:
    run: Callable[[], Any]
    future: Future[Any] = field(default_factory=Future)


@dataclass
class _Predict:
    """Rows of one request for one predictor: column name -> values (factor columns as 1-based codes)."""

    predictor: RPredictor
    columns: dict[str, list[Any]]
    n: int
    future: Future[list[float]] = field(default_factory=Future)


class EmbeddedR:
    """The process's R: a thread that starts R, then runs the jobs of its queue one after the other."""

    def __init__(self) -> None:
        self.ri: Any = None  # rpy2.rinterface, once R runs
        self.helpers: Any = None  # the environment of _HELPERS
        self._queue: queue.SimpleQueue[_Job | _Predict] = queue.SimpleQueue()
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._main, name="embedded-R", daemon=True)
        self._thread.start()
        self._ready.result()  # R failing to start is raised here, in the caller

    # -- the R thread ------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._start()
        except BaseException as err:
            self._ready.set_exception(RError(f"R could not start: {type(err).__name__}: {err}"))
            return
        self._ready.set_result(None)
        later: deque[_Job | _Predict] = deque()
        while True:
            item = later.popleft() if later else self._queue.get()
            if isinstance(item, _Job):
                _run_job(item)
                continue
            batch = [item]
            rows = item.n
            while rows < item.predictor.max_rows:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if (
                    isinstance(nxt, _Predict)
                    and nxt.predictor is item.predictor
                    and rows + nxt.n <= nxt.predictor.max_rows
                ):
                    batch.append(nxt)
                    rows += nxt.n
                else:
                    later.append(nxt)
            try:
                item.predictor._score(batch)
            except BaseException as err:
                for one in batch:
                    if not one.future.done():
                        one.future.set_exception(RError(_message(err)))

    def _start(self) -> None:
        from rpy2.rinterface_lib import callbacks

        callbacks.consolewrite_print = lambda text: log.info("R: %s", text.rstrip())
        callbacks.consolewrite_warnerror = lambda text: log.warning("R: %s", text.rstrip())
        # rpy2 prepends R's library folders (/usr/lib/x86_64-linux-gnu among them) to $LD_LIBRARY_PATH
        # of this process, too late to matter here but inherited by every program it starts later: a
        # Python of another build would load the system's libpython. Put it back once R runs.
        saved = os.environ.get("LD_LIBRARY_PATH")
        import rpy2.rinterface as ri

        with warnings.catch_warnings():
            # rpy2 sets R_SignalHandlers = 0: R takes no signal, so starting it off the main thread
            # leaves the server's own SIGINT/SIGTERM handlers in place (which is why it is done so)
            warnings.filterwarnings("ignore", message="R is not initialized by the main thread")
            ri.initr_simple()
        if saved is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = saved
        self.ri = ri
        self.helpers = ri.baseenv["eval"](ri.parse(_HELPERS))
        version = ri.baseenv["eval"](ri.parse("R.version.string"))[0]
        log.info("embedded %s started in thread %s", version, threading.current_thread().name)

    # -- any thread ------------------------------------------------------------------
    def call(self, run: Callable[[], Any]) -> Any:
        """Run `run()` in the R thread and return its result (its exception is raised here)."""
        if threading.current_thread() is self._thread:
            return run()
        job = _Job(run)
        self._queue.put(job)
        return job.future.result()

    def predict(self, predictor: RPredictor, columns: dict[str, list[Any]], n: int) -> list[float]:
        request = _Predict(predictor, columns, n)
        self._queue.put(request)
        return request.future.result()

    def release(self, obj: Any) -> None:
        """Drop a Python proxy of an R object in the R thread (never while another thread is inside R)."""
        if obj is not None and threading.current_thread() is not self._thread:
            self._queue.put(_Job(lambda: obj is None))


def _run_job(job: _Job) -> None:
    try:
        job.future.set_result(job.run())
    except Exception as err:
        job.future.set_exception(RError(_message(err)))


def _message(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:500] if len(text) > 500 else text


_R: EmbeddedR | None = None
_R_LOCK = threading.Lock()


def embedded_r() -> EmbeddedR:
    """The process's one R, started on first use."""
    global _R
    with _R_LOCK:
        if _R is None:
            _R = EmbeddedR()
        return _R


@dataclass(frozen=True)
class FactorSpec:
    levels: tuple[str, ...]
    ordered: bool


class RPredictor:
    """An R model read from an RDS file, scored with `predict(model, newdata, <args>)` in the process's R."""

    def __init__(
        self,
        rds_path: str,
        *,
        kinds: Mapping[str, str],
        factors: Mapping[str, FactorSpec],
        packages: Sequence[str],
        predict_args: Mapping[str, Any],
        max_rows: int,
    ) -> None:
        self.r = embedded_r()
        self.kinds = dict(kinds)  # column -> number | integer | factor, in the model's column order
        self.max_rows = max_rows
        self.package_versions: dict[str, str] = {}
        self.calls = 0  # R predict calls so far (requests combined into one call count once)
        self._fn: Any = None
        self.r.call(lambda: self._load(rds_path, list(packages), dict(factors), dict(predict_args)))

    def __del__(self) -> None:
        fn, self._fn = getattr(self, "_fn", None), None
        if fn is not None:
            self.r.release(fn)

    def _load(self, path: str, packages: list[str], factors: dict[str, FactorSpec], args: dict[str, Any]) -> None:
        ri, helpers = self.r.ri, self.r.helpers
        pkgs = ri.StrSexpVector(packages)
        model = helpers["load_model"](ri.StrSexpVector([path]), pkgs)
        versions = helpers["versions"](pkgs)
        self.package_versions = dict(zip(packages, list(versions), strict=True))
        r_factors = ri.baseenv["list"](
            **{
                name: ri.baseenv["list"](
                    levels=ri.StrSexpVector(list(spec.levels)),
                    **{"class": ri.StrSexpVector(["ordered", "factor"] if spec.ordered else ["factor"])},
                )
                for name, spec in factors.items()
            }
        )
        self._fn = helpers["make_predictor"](
            model, r_factors, ri.baseenv["list"](**{k: _scalar(ri, v) for k, v in args.items()})
        )

    def predict(self, columns: dict[str, list[Any]], n: int) -> list[float]:
        """One prediction per row; blocks while R scores (combined with other waiting requests)."""
        if n == 0:
            return []
        return self.r.predict(self, columns, n)

    def call_r(self, code: str) -> Any:
        """Evaluate R code in the process's R (tests, diagnostics); the value as a Python list."""
        ri = self.r.ri
        return self.r.call(lambda: list(ri.baseenv["eval"](ri.parse(code))))

    # -- in the R thread ----------------------------------------------------------------
    def _score(self, batch: list[_Predict]) -> None:
        if len(batch) == 1:
            _settle(batch[0], self._call, batch[0].columns, batch[0].n)
            return
        merged = {name: [v for item in batch for v in item.columns[name]] for name in self.kinds}
        try:
            out = self._call(merged, sum(item.n for item in batch))
        except Exception as err:
            log.warning(
                "a combined R call of %d requests failed (%s); scoring them one by one", len(batch), _message(err)
            )
            for item in batch:
                _settle(item, self._call, item.columns, item.n)
            return
        start = 0
        for item in batch:
            item.future.set_result(out[start : start + item.n])
            start += item.n

    def _call(self, columns: dict[str, list[Any]], n: int) -> list[float]:
        ri = self.r.ri
        self.calls += 1
        vectors = {}
        for name, kind in self.kinds.items():
            values = columns[name]
            vectors[name] = ri.FloatSexpVector(values) if kind == "number" else ri.IntSexpVector(values)
        out = self._fn(ri.baseenv["list"](**vectors), ri.IntSexpVector([n]))
        return list(out)


def _settle(item: _Predict, call: Callable[[dict[str, list[Any]], int], list[float]], *args: Any) -> None:
    try:
        item.future.set_result(call(*args))
    except Exception as err:
        item.future.set_exception(RError(_message(err)))


def _scalar(ri: Any, value: Any) -> Any:
    if isinstance(value, bool):
        return ri.BoolSexpVector([value])
    if isinstance(value, int):
        return ri.IntSexpVector([value])
    if isinstance(value, float):
        return ri.FloatSexpVector([value])
    return ri.StrSexpVector([str(value)])

"""Dynamic batching: the inputs of concurrent requests scored in one model call.

A model whose cost is one forward pass per call (a neural network) answers more requests per
second when several requests share a pass. Requests hand their (already validated) inputs to a
`DynamicBatcher` and await the result; one scoring thread takes the first waiting request, waits
at most `max_wait_ms` for others, up to `max_batch` inputs in all, calls `predict` once on all of
them and hands each request its own slice of the answer. The event loop stays free meanwhile,
so requests keep being read and validated while the model runs.

A request whose inputs make a merged call fail (e.g. a corrupt image that passed validation) must
not fail the others: when a call over several requests raises, each request is scored alone and
only the culprit gets the error. A request with more inputs than `max_batch` is scored alone.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_MAX_WAIT_MS = 5.0


@dataclass
class _Request:
    inputs: list[Any]
    future: asyncio.Future[list[Any]]
    loop: asyncio.AbstractEventLoop


@dataclass
class BatchStats:
    """What the batcher did so far: model calls, requests and inputs they scored."""

    calls: int = 0
    requests: int = 0
    inputs: int = 0
    retried_alone: int = 0  # merged calls that failed and were scored request by request

    @property
    def mean_batch(self) -> float:
        return self.inputs / self.calls if self.calls else 0.0


class DynamicBatcher:
    """Group concurrent `submit` calls into `predict` calls of at most `max_batch` inputs.

    `predict(inputs)` must return one result per input, in order (a list or any sequence).
    """

    def __init__(
        self,
        predict: Callable[[list[Any]], Sequence[Any]],
        *,
        max_batch: int,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        name: str = "model",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must not be negative, not {max_wait_ms}")
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    async def submit(self, inputs: list[Any]) -> list[Any]:
        """The results for `inputs`, scored together with whatever other requests are waiting."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        if not inputs:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.put(_Request(list(inputs), future, loop))
        return await future

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, then stop the scoring thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    # ---- the scoring thread ------------------------------------------------------------

    def _run(self) -> None:
        carried: _Request | None = None
        while True:
            first = carried if carried is not None else self._queue.get()
            carried = None
            if first is None:
                break
            batch, size, stop = [first], len(first.inputs), False
            deadline = time.monotonic() + self.max_wait
            while size < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                if size + len(item.inputs) > self.max_batch:
                    carried = item  # the first of the next call
                    break
                batch.append(item)
                size += len(item.inputs)
            self._score([r for r in batch if not r.future.cancelled()])
            if stop:
                break
        self._drain()

    def _drain(self) -> None:
        """After close: score what a request queued while the batcher was closing, request by request."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._score([item])

    def _score(self, batch: list[_Request]) -> None:
        if not batch:
            return
        inputs = [x for r in batch for x in r.inputs]
        try:
            results = self._call(inputs)
        except Exception as err:
            if len(batch) == 1:
                _deliver(batch[0], error=err)
                return
            self.stats.retried_alone += 1
            log.info("a call over %d requests failed (%s): scoring them one by one", len(batch), type(err).__name__)
            for request in batch:
                self._score([request])
            return
        self.stats.calls += 1
        self.stats.requests += len(batch)
        self.stats.inputs += len(inputs)
        offset = 0
        for request in batch:
            n = len(request.inputs)
            _deliver(request, result=results[offset : offset + n])
            offset += n

    def _call(self, inputs: list[Any]) -> list[Any]:
        result = self.predict(inputs)
        results = list(result)
        if len(results) != len(inputs):
            raise RuntimeError(f"predict returned {len(results)} results for {len(inputs)} inputs")
        return results


def _deliver(request: _Request, result: list[Any] | None = None, error: BaseException | None = None) -> None:
    def settle() -> None:
        if request.future.done():  # the client went away
            return
        if error is not None:
            request.future.set_exception(error)
        else:
            request.future.set_result(result if result is not None else [])

    try:
        request.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the event loop is closed: nobody waits for this answer any more
        log.debug("an answer arrived after its event loop closed")

"""Dynamic batching: concurrent requests share model calls, each gets its own slice, one bad request fails alone."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from refarch.serving.batching import DynamicBatcher


class Recorder:
    """A model: doubles numbers, records the size of each call, takes `seconds` per call, fails on 'bad'."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.calls: list[list] = []
        self.seconds = seconds
        self.lock = threading.Lock()

    def __call__(self, inputs: list) -> list:
        with self.lock:
            self.calls.append(list(inputs))
        time.sleep(self.seconds)
        if "bad" in inputs:
            raise ValueError("a bad input")
        return [x * 2 for x in inputs]


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_requests_share_one_call_and_get_their_own_results():
    model = Recorder()
    batcher = DynamicBatcher(model, max_batch=8, max_wait_ms=200)

    async def main():
        return await asyncio.gather(*[batcher.submit([i, 10 * i]) for i in range(4)])

    try:
        results = run(main())
    finally:
        batcher.close()
    assert results == [[0, 0], [2, 20], [4, 40], [6, 60]]
    assert [len(c) for c in model.calls] == [8]
    assert (batcher.stats.calls, batcher.stats.requests, batcher.stats.inputs) == (1, 4, 8)


def test_calls_never_exceed_max_batch_and_every_input_is_scored_once():
    model = Recorder(seconds=0.01)
    batcher = DynamicBatcher(model, max_batch=4, max_wait_ms=20)

    async def main():
        return await asyncio.gather(*[batcher.submit([i]) for i in range(10)])

    try:
        results = run(main())
    finally:
        batcher.close()
    assert results == [[2 * i] for i in range(10)]
    assert max(len(c) for c in model.calls) <= 4
    assert sorted(x for c in model.calls for x in c) == list(range(10))
    assert len(model.calls) >= 3


def test_a_request_larger_than_max_batch_is_scored_alone():
    model = Recorder()
    batcher = DynamicBatcher(model, max_batch=3, max_wait_ms=50)

    async def main():
        return await asyncio.gather(batcher.submit([1]), batcher.submit([1, 2, 3, 4, 5]), batcher.submit([7]))

    try:
        small, big, other = run(main())
    finally:
        batcher.close()
    assert (small, big, other) == ([2], [2, 4, 6, 8, 10], [14])
    assert [1, 2, 3, 4, 5] in model.calls  # never split, never merged


def test_a_bad_request_fails_alone():
    model = Recorder()
    batcher = DynamicBatcher(model, max_batch=8, max_wait_ms=200)

    async def main():
        return await asyncio.gather(
            batcher.submit([1]), batcher.submit(["bad"]), batcher.submit([3]), return_exceptions=True
        )

    try:
        first, bad, third = run(main())
    finally:
        batcher.close()
    assert (first, third) == ([2], [6])
    assert isinstance(bad, ValueError) and str(bad) == "a bad input"
    assert len(model.calls[0]) == 3 and batcher.stats.retried_alone == 1


def test_a_lone_request_waits_at_most_max_wait():
    model = Recorder()
    slow = DynamicBatcher(model, max_batch=8, max_wait_ms=300)
    eager = DynamicBatcher(model, max_batch=8, max_wait_ms=0)

    async def timed(batcher):
        started = time.perf_counter()
        await batcher.submit([1])
        return time.perf_counter() - started

    try:
        waited, immediate = run(timed(slow)), run(timed(eager))
    finally:
        slow.close()
        eager.close()
    assert 0.25 <= waited < 2.0
    assert immediate < 0.2


def test_predict_must_answer_every_input():
    batcher = DynamicBatcher(lambda inputs: inputs[:-1], max_batch=4, max_wait_ms=0)
    try:
        with pytest.raises(RuntimeError, match="1 results for 2 inputs"):
            run(batcher.submit([1, 2]))
    finally:
        batcher.close()


def test_a_closed_batcher_refuses_new_requests():
    batcher = DynamicBatcher(Recorder(), max_batch=2, max_wait_ms=0)
    assert run(batcher.submit([4])) == [8]
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        run(batcher.submit([1]))


@pytest.mark.parametrize(("max_batch", "max_wait_ms"), [(0, 5), (4, -1)])
def test_bad_settings_are_refused(max_batch, max_wait_ms):
    with pytest.raises(ValueError):
        DynamicBatcher(Recorder(), max_batch=max_batch, max_wait_ms=max_wait_ms)


def test_cli_names_the_batching_and_request_limits(monkeypatch, capsys):
    import argparse

    from refarch.cli import main
    from refarch.serving.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--model", "m", "--max-inputs", "20", "--max-batch", "16", "--max-wait-ms", "2.5"])
    assert (args.max_inputs, args.max_batch, args.max_wait_ms) == (20, 16, 2.5)
    defaults = parser.parse_args(["--model", "m"])
    assert (defaults.max_inputs, defaults.max_batch) == (100, 1)  # batching is off unless asked for
    monkeypatch.setenv("REFARCH_API_KEYS", "cli-key-0123456789abcdef")
    assert main(["serve", "--model", "m", "--max-wait-ms", "-1"]) == 2
    assert "--max-wait-ms: Input should be greater than or equal to 0" in capsys.readouterr().err
    assert main(["serve", "--model", "m", "--max-inputs", "0"]) == 2
    assert "--max-inputs: Input should be greater than or equal to 1" in capsys.readouterr().err

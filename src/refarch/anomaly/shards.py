"""Model shards: the detectors of many (device, sensor) groups packed into one blob, with an index.

Ten thousand models as ten thousand blobs cost ten thousand HTTP round trips each way. A shard
is one blob per Spark task instead: the groups' pickled pipelines one after the other, then (for
StandardScaler + RBF OneClassSVM) an `OcsvmBank` of all of them. The index — for each group its
shard, its slot in the bank, and the byte range of its own pickle — lives in the model set's
manifest, so one model is still one ranged read (`read_model`), and a scoring task downloads its
shard once and scores every row of it in a few numpy operations (`ShardScorer`).

Blob: `<models_prefix>/<version>/shard-<NNNNN>.bin`. Imports no Spark and no refarch
configuration: the registered model set scores with it where refarch is not installed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from refarch.anomaly.detectors import OcsvmBank, bankable, dumps, feature_matrix, loads


def shard_blob(prefix: str, version: str, shard: int) -> str:
    """`models/<version>/shard-00003.bin`."""
    return f"{prefix.rstrip('/')}/{version}/shard-{int(shard):05d}.bin"


@dataclass
class PackedShard:
    """A shard's bytes and where each model (and the bank) lies in them."""

    data: bytes
    offsets: list[int]  # of each model's pickle, in slot order
    lengths: list[int]
    bank: tuple[int, int] | None  # (offset, length) of the OcsvmBank, when every model fits one


def pack(models: Sequence[Any]) -> PackedShard:
    """Pickle each model in turn, then add an `OcsvmBank` of them when they are all bankable."""
    parts = [dumps(m) for m in models]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(int).tolist()
    data = b"".join(parts)
    bank = None
    if models and all(bankable(m) for m in models):
        extra = OcsvmBank.from_models(models).to_bytes()
        bank = (len(data), len(extra))
        data += extra
    return PackedShard(data, offsets[:-1], [len(p) for p in parts], bank)


def read_model(container: Any, blob: str, offset: int, length: int) -> Any:
    """One group's pipeline: a ranged read of its bytes in the shard blob."""
    return loads(container.download_blob(blob, offset=int(offset), length=int(length)).readall())


@dataclass
class ScoreTimes:
    """Where a scoring task's time went (seconds), for the run log and the benchmark."""

    unpack: float = 0.0
    predict: float = 0.0


@dataclass
class ShardScorer:
    """Scores rows with the models of one shard, given the shard's bytes.

    `bank` (offset, length) set: every model is scored through the bank, no model unpickled.
    Otherwise models are unpickled on first use from their (offset, length).
    """

    data: bytes | memoryview
    bank: tuple[int, int] | None
    times: ScoreTimes = field(default_factory=ScoreTimes)
    _bank: OcsvmBank | None = None
    _models: dict[int, Any] = field(default_factory=dict)

    def model(self, offset: int, length: int) -> Any:
        key = int(offset)
        if key not in self._models:
            self._models[key] = loads(memoryview(self.data)[key : key + int(length)])
        return self._models[key]

    def score(self, rows: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
        """`-decision_function` per row; rows carry `slot`, `offset`, `length` of their model."""
        x = feature_matrix(rows, features)
        if self.bank is not None:
            started = time.perf_counter()
            if self._bank is None:
                offset, length = self.bank
                self._bank = OcsvmBank.from_bytes(memoryview(self.data)[offset : offset + length])
            self.times.unpack += time.perf_counter() - started
            started = time.perf_counter()
            scores = -self._bank.decision_function(rows["slot"].to_numpy(dtype=np.int64), x)
            self.times.predict += time.perf_counter() - started
            return scores
        scores = np.empty(len(rows))
        offsets = rows["offset"].to_numpy(dtype=np.int64)
        lengths = rows["length"].to_numpy(dtype=np.int64)
        order = np.argsort(offsets, kind="stable")
        bounds = np.flatnonzero(np.diff(offsets[order])) + 1
        for idx in np.split(order, bounds):
            started = time.perf_counter()
            model = self.model(offsets[idx[0]], lengths[idx[0]])
            self.times.unpack += time.perf_counter() - started
            started = time.perf_counter()
            scores[idx] = -model.decision_function(x[idx])
            self.times.predict += time.perf_counter() - started
        return scores

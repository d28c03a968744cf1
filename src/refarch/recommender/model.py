"""The MLflow model `recommender`: a typed pyfunc that answers "top k for this user" from the store.

Input is a list of `RecommendationRequest` (MLflow's type-hinted PythonModel: the input is
validated by pydantic, no pandas round trip). A known user gets the precomputed list; an
unknown user gets the popular list, marked `fallback`; a k deeper than the precomputed
lists is computed from the ALS factors packaged with the model (seen items removed).
The model reads whichever version the store's pointer names, and says which in the answer.

A scoring app calls `predict_async` and `check_ready_async`, which read the store without
blocking the event loop and give up after the app's timeout (see `refarch.serving`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from refarch.recommender.store import RecommendationStore, UserList, open_store

log = logging.getLogger(__name__)

MAX_K = 100
FACTORS_ARTIFACT = "factors"


class RecommendationRequest(BaseModel):
    """One question: the top `k` items for `user_id`."""

    model_config = ConfigDict(extra="forbid")

    user_id: int = Field(ge=0, le=2**63 - 1, description="the user to recommend for")
    k: int = Field(10, ge=1, le=MAX_K, description=f"how many items, 1 to {MAX_K}")


class ScoredItem(BaseModel):
    item_id: int
    score: float


class Recommendation(BaseModel):
    """The answer for one request; `fallback` is true when the user is unknown (popular items)."""

    user_id: int
    k: int
    source: str = Field(description="precomputed, als (computed from factors) or popular (fallback)")
    fallback: bool
    store_version: str
    items: list[ScoredItem]


@dataclass
class Factors:
    """ALS factors and each user's seen items, enough to rank every item for a known user."""

    user_ids: np.ndarray  # sorted int64
    user_factors: np.ndarray  # float32, one row per user id
    item_ids: np.ndarray  # int64
    item_factors: np.ndarray  # float32, one row per item id
    seen_indptr: np.ndarray  # CSR over user rows: seen item positions
    seen_indices: np.ndarray

    @classmethod
    def build(
        cls,
        user_ids: np.ndarray,
        user_factors: np.ndarray,
        item_ids: np.ndarray,
        item_factors: np.ndarray,
        seen_users: np.ndarray,
        seen_items: np.ndarray,
    ) -> Factors:
        """Sort users, and turn (user, item) seen pairs into a CSR index over factor rows."""
        if len(user_ids) == 0 or len(item_ids) == 0:
            raise ValueError("the ALS model has no user or no item factors")
        order = np.argsort(user_ids)
        user_ids = np.asarray(user_ids, dtype=np.int64)[order]
        user_factors = np.asarray(user_factors, dtype=np.float32)[order]
        item_ids = np.asarray(item_ids, dtype=np.int64)
        seen_users = np.asarray(seen_users, dtype=np.int64)
        seen_items = np.asarray(seen_items, dtype=np.int64)
        rows = np.minimum(np.searchsorted(user_ids, seen_users), len(user_ids) - 1)
        item_order = np.argsort(item_ids)
        sorted_items = item_ids[item_order]
        pos = np.minimum(np.searchsorted(sorted_items, seen_items), len(item_ids) - 1)
        cols = item_order[pos]
        keep = (user_ids[rows] == seen_users) & (sorted_items[pos] == seen_items)
        rows, cols = rows[keep], cols[keep]
        counts = np.bincount(rows, minlength=len(user_ids))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        cols = cols[np.argsort(rows, kind="stable")].astype(np.int32)
        return cls(user_ids, user_factors, item_ids, np.asarray(item_factors, dtype=np.float32), indptr, cols)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, **{k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path: str | Path) -> Factors:
        with np.load(path) as data:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def top_k(self, user_id: int, k: int) -> tuple[list[int], list[float]] | None:
        """The k best unseen items by predicted rating, or None for a user without factors."""
        row = int(np.searchsorted(self.user_ids, user_id))
        if row >= len(self.user_ids) or self.user_ids[row] != user_id:
            return None
        scores = self.item_factors @ self.user_factors[row]
        scores[self.seen_indices[self.seen_indptr[row] : self.seen_indptr[row + 1]]] = -np.inf
        k = min(k, int(np.isfinite(scores).sum()))
        if k <= 0:
            return [], []
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return self.item_ids[best].tolist(), scores[best].astype(float).tolist()

    def most_rated(self) -> np.ndarray:
        """Item ids by how often they were seen in training, most first (deep popular fallback)."""
        counts = np.bincount(self.seen_indices, minlength=len(self.item_ids))
        return self.item_ids[np.argsort(-counts, kind="stable")]


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """Serves top-k lists from the serving store; settings name the store, never hold a secret."""

    def __init__(self, store_settings: dict[str, Any]) -> None:
        self.store_settings = dict(store_settings)
        self._store: RecommendationStore | None = None
        self._factors: Factors | None = None
        self._most_rated: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the settings only: connections and arrays are rebuilt by `load_context`."""
        return {"store_settings": self.store_settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["store_settings"])  # type: ignore[misc]

    def load_context(self, context: Any) -> None:
        path = (context.artifacts or {}).get(FACTORS_ARTIFACT) if context is not None else None
        if path:
            self._factors = Factors.load(path)
            self._most_rated = self._factors.most_rated()
        self._store = open_store(self.store_settings)

    @property
    def store(self) -> RecommendationStore:
        if self._store is None:
            self._store = open_store(self.store_settings)
        return self._store

    def check_ready(self) -> None:
        """Raise unless the store answers and serves a version."""
        self.store.ping()

    async def check_ready_async(self, timeout: float) -> None:
        """`check_ready` for a scoring app's event loop, bounded by `timeout` seconds."""
        await self.store.ping_async(timeout)

    def predict(
        self, model_input: list[RecommendationRequest], params: dict[str, Any] | None = None
    ) -> list[Recommendation]:
        stored = self.store.get_many([r.user_id for r in model_input])
        return [self._recommend(r.user_id, r.k, s) for r, s in zip(model_input, stored, strict=True)]

    async def predict_async(self, model_input: list[RecommendationRequest], timeout: float) -> list[Recommendation]:
        """`predict` for a scoring app's event loop: one store round trip, StoreError after `timeout` seconds."""
        store, users = self.store, [r.user_id for r in model_input]
        stored = store.get_many(users) if store.reads_inline else await store.get_many_async(users, timeout)
        return [self._recommend(r.user_id, r.k, s) for r, s in zip(model_input, stored, strict=True)]

    def _recommend(self, user_id: int, k: int, stored: UserList) -> Recommendation:
        if stored.fallback:
            items, scores = self._popular(stored, k)
            source = "popular"
        elif k <= len(stored.items):
            items, scores, source = stored.items[:k], stored.scores[:k], "precomputed"
        else:
            deep = self._factors.top_k(user_id, k) if self._factors is not None else None
            if deep is None:  # factors do not know this user: the stored list is all there is
                items, scores, source = stored.items, stored.scores, "precomputed"
            else:
                (items, scores), source = deep, "als"
        return Recommendation(
            user_id=user_id,
            k=k,
            source=source,
            fallback=stored.fallback,
            store_version=stored.version,
            # plain dicts: validated in one pass by pydantic-core, not one Python __init__ per item
            items=[{"item_id": i, "score": s} for i, s in zip(items, scores, strict=True)],
        )

    def _popular(self, stored: UserList, k: int) -> tuple[list[int], list[float]]:
        """The popular list; deeper than stored, extended by the most-rated items (score 0)."""
        items, scores = list(stored.items[:k]), list(stored.scores[:k])
        if len(items) < k and self._most_rated is not None:
            have = set(items)
            for item in self._most_rated:
                if len(items) >= k:
                    break
                if int(item) not in have:
                    items.append(int(item))
                    scores.append(0.0)
        return items, scores

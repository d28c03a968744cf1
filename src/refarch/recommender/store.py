"""The serving store: each user's precomputed top-k list, read by user id in well under a millisecond.

SQLite is the embedded default (one file, nothing to run); Redis serves production
(Azure Cache for Redis: TLS on 6380, password from a secret), standalone or in cluster mode.
All keep the same guarantees: every publish writes its lists under a new version, then one
pointer flips to it, then older versions are removed. A reader sees the old set or the new
one, never a mix: SQLite reads the pointer and the user's list in one statement, standalone
Redis in one Lua script; Redis Cluster reads the pointer, then the buckets named by that
version, and reads again from the new pointer if a bucket was removed meanwhile. A publish
that fails half way removes its partial version and the old one keeps serving.

On Redis a version's lists are spread over a fixed number of hashes (buckets, 256 by default),
so in cluster mode they spread over every shard; the pointer and the versions' metadata share
one hash slot, so the flip stays one atomic script. (The layout before buckets kept a version
in one hash and its pointer at `<prefix>current`; the two do not share a key, so a new publish
can be written beside an old deployment, which keeps reading the old keys until it is replaced.)

A scoring app reads through `get_many_async`: on Redis an asyncio client without retries,
bounded by the caller's timeout, so a store outage never blocks the event loop; SQLite reads
a local file from the page cache in microseconds, inline (a thread hop would cost more).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_core import from_json

if TYPE_CHECKING:
    from refarch.runtime.config import ServingStoreConf

log = logging.getLogger(__name__)

POPULAR_FIELD = "_popular"
STORE_ENV_PREFIX = "REFARCH_STORE_"


class StoreError(RuntimeError):
    """The store is unreachable, misconfigured, or has nothing published yet.

    `reason` is short and safe to show to anyone (no host, port or path): "unreachable",
    "timed out", "nothing published yet", ...; the message, for the log, may say more.
    """

    http_status = 503  # a scoring app answers "unavailable, retry", not "server bug"

    def __init__(self, message: str, reason: str = "unavailable") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class UserList:
    """One user's list as stored: items best first, their scores, and the version it came from."""

    version: str
    items: list[int]
    scores: list[float]
    fallback: bool = False  # True when the user is unknown and this is the popular list


@dataclass(frozen=True)
class VersionInfo:
    version: str
    users: int
    depth: int
    created: float


_last_version_us = 0
_version_lock = threading.Lock()


def new_version() -> str:
    """Versions sort by creation time (to the microsecond, strictly increasing in a process);
    the random tail keeps concurrent publishers on different machines apart."""
    global _last_version_us
    with _version_lock:
        now_us = max(time.time_ns() // 1000, _last_version_us + 1)
        _last_version_us = now_us
    seconds, micros = divmod(now_us, 1_000_000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
    return f"{stamp}.{micros:06d}Z-{uuid.uuid4().hex[:8]}"


def encode_list(items: Sequence[int], scores: Sequence[float]) -> bytes:
    if len(items) != len(scores):
        raise ValueError(f"{len(items)} items but {len(scores)} scores")
    return json.dumps([[int(i) for i in items], [float(s) for s in scores]], separators=(",", ":")).encode()


def decode_list(payload: bytes | str, version: str, fallback: bool) -> UserList:
    items, scores = from_json(payload)  # pydantic-core's parser: several times json.loads' speed
    return UserList(version=version, items=items, scores=scores, fallback=fallback)


Row = tuple[int, Sequence[int], Sequence[float]]


class RecommendationStore(ABC):
    """Key-value store of per-user lists, published atomically under versions."""

    reads_inline = False  # True: get_many never waits on a network, an event loop may call it directly

    @abstractmethod
    def get(self, user_id: int) -> UserList:
        """The user's list, or the popular list marked `fallback`; StoreError if nothing is published."""

    def get_many(self, user_ids: Sequence[int]) -> list[UserList]:
        """`get` for each user, in order."""
        return [self.get(u) for u in user_ids]

    async def get_many_async(self, user_ids: Sequence[int], timeout: float) -> list[UserList]:
        """`get_many` for an event loop, failing with StoreError("timed out") after `timeout` seconds.

        This default reads inline: right for an embedded store (SQLite) whose reads come from
        the page cache in microseconds. A networked store overrides it with an async client.
        """
        return self.get_many(user_ids)

    async def ping_async(self, timeout: float) -> None:
        """`ping` for an event loop, bounded by `timeout` seconds (see `get_many_async`)."""
        self.ping()

    @abstractmethod
    def current_version(self) -> str | None: ...

    @abstractmethod
    def versions(self) -> list[VersionInfo]:
        """Every version present (complete or not), oldest first."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StoreError unless the store answers and serves a version."""

    @abstractmethod
    def _write_version(self, version: str, rows: Iterable[Row], popular: bytes, batch_size: int) -> tuple[int, int]:
        """Write every list of `version` (not yet visible); return (users, depth)."""

    @abstractmethod
    def _flip(self, version: str) -> None: ...

    @abstractmethod
    def _remove_version(self, version: str) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def publish(
        self,
        rows: Iterable[Row],
        popular_items: Sequence[int],
        popular_scores: Sequence[float],
        version: str | None = None,
        batch_size: int = 2000,
    ) -> str:
        """Write all lists under a new version, flip the pointer, then drop older versions.

        `rows` is streamed (user_id, items, scores); nothing is visible to readers until the
        flip. If anything fails before the flip, the partial version is removed and the error
        re-raised: the previous version keeps serving.
        """
        if not popular_items:
            raise ValueError("the popular list is empty: unknown users would get nothing")
        version = version or new_version()
        popular = encode_list(popular_items, popular_scores)
        try:
            users, depth = self._write_version(version, rows, popular, batch_size)
            if users == 0:
                raise ValueError("no user lists to publish")
            self._flip(version)
        except BaseException:
            log.error("publish of version %s failed; the previous version keeps serving", version)
            try:
                self._remove_version(version)
            except Exception:  # the original error matters more; stale versions go at the next publish
                log.warning("could not remove the partial version %s", version, exc_info=True)
            raise
        removed = self.remove_old_versions()
        log.info("published version %s: %d users, depth %d; removed %d old version(s)", version, users, depth, removed)
        return version

    def remove_old_versions(self) -> int:
        """Drop versions older than the current one (a newer one may still be being written)."""
        current = self.current_version()
        if current is None:
            return 0
        old = [v.version for v in self.versions() if v.version < current]
        for v in old:
            self._remove_version(v)
        return len(old)


# ---- SQLite ---------------------------------------------------------------------------

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS rec_pointer (name TEXT PRIMARY KEY, version TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rec_versions (
    version TEXT PRIMARY KEY, created REAL NOT NULL, users INTEGER NOT NULL,
    depth INTEGER NOT NULL, popular BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rec_lists (
    version TEXT NOT NULL, user_id INTEGER NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (version, user_id)
) WITHOUT ROWID;
"""

# One statement, so one snapshot: the pointer and the list it points to are read together.
_SQLITE_GET = """
SELECT p.version, l.payload, CASE WHEN l.payload IS NULL THEN v.popular END
FROM rec_pointer p
JOIN rec_versions v ON v.version = p.version
LEFT JOIN rec_lists l ON l.version = p.version AND l.user_id = ?
WHERE p.name = 'current'
"""


class SqliteStore(RecommendationStore):
    """One SQLite file in WAL mode: readers never block the publisher, nor the publisher them."""

    reads_inline = True  # a local file read from the page cache in microseconds

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SQLITE_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def get(self, user_id: int) -> UserList:
        row = self._conn.execute(_SQLITE_GET, (int(user_id),)).fetchone()
        if row is None:
            raise StoreError(f"nothing published in {self.path}", reason="nothing published yet")
        version, payload, popular = row
        if payload is not None:
            return decode_list(payload, version, fallback=False)
        return decode_list(popular, version, fallback=True)

    def current_version(self) -> str | None:
        row = self._conn.execute("SELECT version FROM rec_pointer WHERE name = 'current'").fetchone()
        return row[0] if row else None

    def versions(self) -> list[VersionInfo]:
        rows = self._conn.execute("SELECT version, users, depth, created FROM rec_versions ORDER BY version").fetchall()
        return [VersionInfo(*r) for r in rows]

    def ping(self) -> None:
        try:
            version = self.current_version()
        except sqlite3.Error as err:
            raise StoreError(f"serving store {self.path}: {err}", reason="unreadable") from None
        if version is None:
            raise StoreError(f"serving store {self.path}: nothing published yet", reason="nothing published yet")

    def _write_version(self, version: str, rows: Iterable[Row], popular: bytes, batch_size: int) -> tuple[int, int]:
        conn = self._connect()
        users = depth = 0

        def payloads() -> Iterator[tuple[str, int, bytes]]:
            nonlocal users, depth
            for user_id, items, scores in rows:
                users += 1
                depth = max(depth, len(items))
                yield version, int(user_id), encode_list(items, scores)

        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO rec_lists (version, user_id, payload) VALUES (?, ?, ?)", payloads())
            conn.execute(
                "INSERT INTO rec_versions (version, created, users, depth, popular) VALUES (?, ?, ?, ?, ?)",
                (version, time.time(), users, depth, popular),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()
        return users, depth

    def _flip(self, version: str) -> None:
        self._conn.execute(
            "INSERT INTO rec_pointer (name, version) VALUES ('current', ?) "
            "ON CONFLICT(name) DO UPDATE SET version = excluded.version",
            (version,),
        )

    def _remove_version(self, version: str) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM rec_lists WHERE version = ?", (version,))
            conn.execute("DELETE FROM rec_versions WHERE version = ?", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


# ---- Redis ----------------------------------------------------------------------------

# The layout, for a prefix P and a version V:
#   {P}current      the pointer: the version being served
#   {P}meta:V       users, depth, created, buckets of version V; written last, so it marks V complete
#   {P}versions     every version present, complete or not, with its bucket count (a hash V -> buckets)
#   P lists:V:B     bucket B of version V (B = |user id| mod buckets): user id -> list, plus the popular list
# The `{P}` keys share one hash slot (Redis Cluster hashes only the part in braces), so the flip
# is one script on one shard; the buckets have no braces and spread over every shard's slots.
# Every bucket holds the popular list: a bucket that answers without it no longer exists.
DEFAULT_BUCKETS = 256

# bucket of a user id given as decimal text: |id| mod n, as Python's `abs(user_id) % n`
_LUA_BUCKET = """
local function bucket(u, n)
  local b = 0
  for j = 1, #u do
    local d = string.byte(u, j) - 48
    if d >= 0 and d <= 9 then b = (b * 10 + d) % n end
  end
  return b
end
"""

# Standalone Redis: the pointer and the lists of a whole batch in one server-side step, so one
# batch reads one version. Keys are built from the pointer's value, which a single shard allows.
# Answers {version, popular or false, list of user 1 or false, ...} (popular only if a user is
# unknown), {version} for a version without meta, false when nothing is published.
_REDIS_GET_MANY = (
    _LUA_BUCKET
    + """
local v = redis.call('GET', KEYS[1])
if not v then return false end
local n = tonumber(redis.call('HGET', ARGV[1] .. v, 'buckets'))
if not n then return {v} end
local base = ARGV[2] .. v .. ':'
local out = {v, false}
local unknown = nil
for i = 4, #ARGV do
  local b = bucket(ARGV[i], n)
  local p = redis.call('HGET', base .. b, ARGV[i])
  out[i - 1] = p
  if not p then unknown = b end
end
if unknown then out[2] = redis.call('HGET', base .. unknown, ARGV[3]) end
return out
"""
)

# Redis Cluster: the pointer and its version's bucket count, from the `{P}` slot in one step
# ({version, buckets or false}, or false). The lists are then read from their own shards.
_REDIS_POINTER = """
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('HGET', KEYS[2] .. v, 'buckets')}
"""

# Flip only to a version whose lists are complete (its meta key is written last).
_REDIS_FLIP = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

# Before a version's buckets go: drop its meta (so nothing can flip to it any more), unless it is
# the one being served.
_REDIS_RETIRE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
return 1
"""


if sys.version_info >= (3, 11):

    async def _within(call: Awaitable[Any], timeout: float) -> Any:
        async with asyncio.timeout(timeout):  # no extra task, unlike wait_for before 3.12
            return await call

else:  # pragma: no cover - Python 3.10
    _within = asyncio.wait_for


async def _redis_io(call: Awaitable[Any]) -> Any:
    """Await one redis.asyncio command, a lost connection always a redis.ConnectionError.

    A write on a connection the server has just closed (a primary killed mid-read) escapes
    redis.asyncio as a raw transport error (RuntimeError, TypeError or AttributeError, by Python
    version), not a ConnectionError (redis/redis-py#4287, #3546). Only the command is awaited here,
    so such an error is the connection's, never a bug of ours turned into a 503.
    """
    import redis

    try:
        return await call
    except (RuntimeError, TypeError, AttributeError) as err:
        raise redis.ConnectionError(f"connection lost: {type(err).__name__}: {err}") from None


def _redis_error(err: Exception) -> StoreError:
    """A StoreError whose reason says what happened without saying where."""
    import redis

    if isinstance(err, (asyncio.TimeoutError, redis.TimeoutError)):
        reason = "timed out"
    elif isinstance(err, (redis.ConnectionError, OSError)):
        reason = "unreachable"
    else:
        reason = "store error"
    return StoreError(f"serving store (redis): {type(err).__name__}: {err}", reason=reason)


def bucket_of(user_id: int, buckets: int) -> int:
    """The bucket holding a user's list (the read script computes the same from the decimal id)."""
    return abs(int(user_id)) % buckets


def _nothing_published() -> StoreError:
    return StoreError("serving store (redis): nothing published yet", reason="nothing published yet")


def _incomplete(version: str) -> StoreError:
    return StoreError(f"serving store (redis): version {version!r} has no lists", reason="incomplete version")


class RedisStore(RecommendationStore):
    """Standalone Redis: lists of a version in `buckets` hashes, read with one script per batch.

    `client` (redis.Redis) publishes and serves blocking callers; `async_client()` makes a
    redis.asyncio.Redis (no retries) for the event loop of a scoring app, one per loop: an
    asyncio client's connections belong to the loop that opened them. `buckets` is how many
    hashes a version's lists are spread over (a publish setting: readers take it from the version).
    """

    def __init__(
        self,
        client: Any,
        prefix: str = "refarch:recommender:",
        async_client: Callable[[], Any] | None = None,
        buckets: int = DEFAULT_BUCKETS,
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise StoreError(
                f"serving store: the key prefix {prefix!r} has braces (a Redis Cluster hash tag)",
                reason="misconfigured",
            )
        if not 1 <= buckets <= 65536:
            raise StoreError(f"serving store: buckets must be 1-65536, not {buckets}", reason="misconfigured")
        self.client = client
        self.async_client = async_client
        self.prefix = prefix
        self.buckets = buckets
        self._flip_script = client.register_script(_REDIS_FLIP)
        self._retire_script = client.register_script(_REDIS_RETIRE)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_loop: Any = None
        self._register_reads()

    def _register_reads(self) -> None:
        self._get_many = self.client.register_script(_REDIS_GET_MANY)

    def _async_client(self) -> Any:
        """This event loop's asyncio client (made on first use in a loop), with what it needs registered."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            client = self.async_client()  # type: ignore[misc]
            self._on_loop = (client, client.register_script(self._async_read_script))
            self._loop = loop
        return self._on_loop

    _async_read_script = _REDIS_GET_MANY

    # -- keys: the `{prefix}` ones share a slot, the buckets spread

    @property
    def _pointer(self) -> str:
        return f"{{{self.prefix}}}current"

    @property
    def _meta_prefix(self) -> str:
        return f"{{{self.prefix}}}meta:"

    def _meta_key(self, version: str) -> str:
        return self._meta_prefix + version

    @property
    def _versions_key(self) -> str:
        return f"{{{self.prefix}}}versions"

    def _bucket_key(self, version: str, bucket: int) -> str:
        return f"{self.prefix}lists:{version}:{bucket}"

    def _script_args(self, user_ids: Sequence[int]) -> dict[str, list[Any]]:
        return {
            "keys": [self._pointer],
            "args": [self._meta_prefix, f"{self.prefix}lists:", POPULAR_FIELD, *(int(u) for u in user_ids)],
        }

    @staticmethod
    def _decode(found: Any, n: int) -> list[UserList]:
        if not found:
            raise _nothing_published()
        version = found[0].decode()
        if len(found) < 2:
            raise _incomplete(version)
        popular, payloads = found[1], found[2:]
        if len(payloads) != n or (popular is None and any(p is None for p in payloads)):
            raise _incomplete(version)
        return [
            decode_list(p, version, fallback=False) if p is not None else decode_list(popular, version, fallback=True)
            for p in payloads
        ]

    def get(self, user_id: int) -> UserList:
        return self.get_many([user_id])[0]

    def get_many(self, user_ids: Sequence[int]) -> list[UserList]:
        import redis

        try:
            found = self._get_many(**self._script_args(user_ids))
        except redis.RedisError as err:
            raise _redis_error(err) from None
        return self._decode(found, len(user_ids))

    async def get_many_async(self, user_ids: Sequence[int], timeout: float) -> list[UserList]:
        if self.async_client is None:
            return self.get_many(user_ids)
        _, script = self._async_client()
        found = await self._bounded(_redis_io(script(**self._script_args(user_ids))), timeout)
        return self._decode(found, len(user_ids))

    async def ping_async(self, timeout: float) -> None:
        """The read script for no user: the pointer is set, and the script is loaded (after a restart) for reads."""
        if self.async_client is None:
            self.ping()
            return
        _, script = self._async_client()
        self._decode(await self._bounded(_redis_io(script(**self._script_args([]))), timeout), 0)

    @staticmethod
    async def _bounded(call: Awaitable[Any], timeout: float) -> Any:
        """Await a redis.asyncio call for at most `timeout` s; a cancelled call drops its connection."""
        import redis

        try:
            return await _within(call, timeout)
        except asyncio.TimeoutError:
            raise StoreError(f"serving store (redis): no answer within {timeout * 1000:.0f} ms", "timed out") from None
        except (redis.RedisError, OSError) as err:
            raise _redis_error(err) from None

    def current_version(self) -> str | None:
        value = self.client.get(self._pointer)
        return value.decode() if value is not None else None

    def versions(self) -> list[VersionInfo]:
        names = sorted(v.decode() for v in self.client.hkeys(self._versions_key))
        out = []
        for version in names:
            meta = {k.decode(): v.decode() for k, v in self.client.hgetall(self._meta_key(version)).items()}
            out.append(
                VersionInfo(
                    version, int(meta.get("users", 0)), int(meta.get("depth", 0)), float(meta.get("created", 0))
                )
            )
        return out

    def ping(self) -> None:
        import redis

        try:
            self.client.ping()
            version = self.current_version()
        except redis.RedisError as err:
            raise _redis_error(err) from None
        if version is None:
            raise _nothing_published()

    def _pipeline(self) -> Any:
        return self.client.pipeline(transaction=False)

    def _write_buckets(self, version: str, buckets: dict[int, dict[str, bytes]]) -> None:
        pipe = self._pipeline()
        for bucket, fields in buckets.items():
            pipe.hset(self._bucket_key(version, bucket), mapping=fields)
        pipe.execute()

    def _write_version(self, version: str, rows: Iterable[Row], popular: bytes, batch_size: int) -> tuple[int, int]:
        if "{" in version or "}" in version:
            raise ValueError(f"a version name has no braces: {version!r}")
        n = self.buckets
        # listed first: a publisher that dies half way leaves a version the next publish removes
        self.client.hset(self._versions_key, version, n)
        users = depth = pending = 0
        batch: dict[int, dict[str, bytes]] = {}
        for user_id, items, scores in rows:
            users += 1
            depth = max(depth, len(items))
            batch.setdefault(bucket_of(user_id, n), {})[str(int(user_id))] = encode_list(items, scores)
            pending += 1
            if pending >= batch_size:
                self._write_buckets(version, batch)
                batch, pending = {}, 0
        if batch:
            self._write_buckets(version, batch)
        # every bucket gets the popular list, even one no user falls in: a missing bucket means a removed version
        for start in range(0, n, 64):
            self._write_buckets(version, {b: {POPULAR_FIELD: popular} for b in range(start, min(start + 64, n))})
        meta = {"users": users, "depth": depth, "created": time.time(), "buckets": n}
        self.client.hset(self._meta_key(version), mapping=meta)
        return users, depth

    def _flip(self, version: str) -> None:
        if not self._flip_script(keys=[self._pointer, self._meta_key(version)], args=[version]):
            raise StoreError(f"version {version} is incomplete; the pointer was not moved")

    def _remove_version(self, version: str) -> None:
        if not self._retire_script(keys=[self._pointer, self._meta_key(version)], args=[version]):
            raise StoreError(f"refusing to remove the serving version {version}")
        recorded = self.client.hget(self._versions_key, version)
        n = int(recorded) if recorded is not None else self.buckets
        for start in range(0, n, 256):
            self.client.unlink(*(self._bucket_key(version, b) for b in range(start, min(start + 256, n))))
        self.client.hdel(self._versions_key, version)

    def close(self) -> None:
        self.client.close()
        # the async client's connections belong to the event loop that opened them and close with it


class RedisClusterStore(RedisStore):
    """Redis Cluster (Azure Cache for Redis clustered, or with the OSS cluster policy).

    A script may only touch keys of one slot, so a read takes two steps: the pointer (with its
    version's bucket count) from the `{prefix}` slot, then the users' buckets from their shards,
    one HMGET per bucket, pipelined. Each bucket answers with the popular list too; a bucket
    without it was removed after a flip, and the batch is read again from the new pointer. So
    every answer still comes from one version. The pointer is kept `pointer_ttl_s` seconds: a
    read then costs one round trip, and a flip is seen within that time (at once when the old
    version's buckets are gone).

    `client` is a redis.cluster.RedisCluster; `async_client()` makes a
    redis.asyncio.cluster.RedisCluster (no retries) for an event loop.
    """

    def __init__(
        self,
        client: Any,
        prefix: str = "refarch:recommender:",
        async_client: Callable[[], Any] | None = None,
        buckets: int = DEFAULT_BUCKETS,
        pointer_ttl_s: float = 1.0,
    ) -> None:
        super().__init__(client, prefix=prefix, async_client=async_client, buckets=buckets)
        self.pointer_ttl_s = pointer_ttl_s
        self._pointer_cache: tuple[str, int, float] | None = None  # version, buckets, read at (monotonic)

    def _register_reads(self) -> None:
        self._pointer_script = self.client.register_script(_REDIS_POINTER)

    _async_read_script = _REDIS_POINTER

    def _pipeline(self) -> Any:
        return self.client.pipeline()

    def _pointer_args(self) -> dict[str, list[Any]]:
        return {"keys": [self._pointer, self._meta_prefix], "args": []}

    def _remember(self, found: Any) -> tuple[str, int]:
        if not found:
            raise _nothing_published()
        version = found[0].decode()
        if found[1] is None:
            raise _incomplete(version)
        pointer = (version, int(found[1]))
        self._pointer_cache = (*pointer, time.monotonic())
        return pointer

    def _cached_pointer(self) -> tuple[str, int] | None:
        cached = self._pointer_cache
        if cached is not None and time.monotonic() - cached[2] < self.pointer_ttl_s:
            return cached[0], cached[1]
        return None

    @staticmethod
    def _plan(user_ids: Sequence[int], buckets: int) -> dict[int, list[int]]:
        """Each bucket the batch reads, with the positions of its users in the batch."""
        plan: dict[int, list[int]] = {}
        for i, user in enumerate(user_ids):
            plan.setdefault(bucket_of(user, buckets), []).append(i)
        return plan

    def _commands(self, version: str, user_ids: Sequence[int], plan: dict[int, list[int]]) -> list[tuple[str, list]]:
        return [
            (self._bucket_key(version, b), [str(int(user_ids[i])) for i in where] + [POPULAR_FIELD])
            for b, where in plan.items()
        ]

    @staticmethod
    def _assemble(
        version: str, n: int, plan: dict[int, list[int]], replies: Sequence[Sequence[Any]]
    ) -> list[UserList] | None:
        """The batch's lists in order, or None when a bucket is gone (the version was removed)."""
        out: list[UserList | None] = [None] * n
        for where, reply in zip(plan.values(), replies, strict=True):
            *payloads, popular = reply
            if popular is None:
                return None
            for i, payload in zip(where, payloads, strict=True):
                out[i] = (
                    decode_list(payload, version, fallback=False)
                    if payload is not None
                    else decode_list(popular, version, fallback=True)
                )
        return out  # type: ignore[return-value]

    def _read(self, run: Callable[[list[tuple[str, list]]], list], user_ids: Sequence[int], pointer: tuple[str, int]):
        version, buckets = pointer
        plan = self._plan(user_ids, buckets)
        return self._assemble(version, len(user_ids), plan, run(self._commands(version, user_ids, plan)))

    def get_many(self, user_ids: Sequence[int]) -> list[UserList]:
        import redis

        def run(commands: list[tuple[str, list]]) -> list:
            pipe = self._pipeline()
            for key, fields in commands:
                pipe.hmget(key, fields)
            return pipe.execute()

        try:
            for fresh in (False, True):
                pointer = None if fresh else self._cached_pointer()
                pointer = pointer or self._remember(self._pointer_script(**self._pointer_args()))
                if not user_ids:
                    return []
                found = self._read(run, user_ids, pointer)
                if found is not None:
                    return found
                self._pointer_cache = None
        except redis.RedisError as err:
            raise _redis_error(err) from None
        raise _incomplete(pointer[0])

    async def get_many_async(self, user_ids: Sequence[int], timeout: float) -> list[UserList]:
        if self.async_client is None:
            return self.get_many(user_ids)
        return await self._bounded(self._read_async(user_ids), timeout)

    async def _read_async(self, user_ids: Sequence[int], fresh: bool = False) -> list[UserList]:
        client, pointer_script = self._async_client()
        for attempt in range(2):
            pointer = None if fresh or attempt else self._cached_pointer()
            pointer = pointer or self._remember(await _redis_io(pointer_script(**self._pointer_args())))
            if not user_ids:
                return []
            version, buckets = pointer
            plan = self._plan(user_ids, buckets)
            commands = self._commands(version, user_ids, plan)
            if len(commands) == 1:
                replies = [await _redis_io(client.hmget(*commands[0]))]
            else:
                pipe = client.pipeline()
                for key, fields in commands:
                    pipe.hmget(key, fields)
                replies = await _redis_io(pipe.execute())
            found = self._assemble(version, len(user_ids), plan, replies)
            if found is not None:
                return found
            self._pointer_cache = None
        raise _incomplete(pointer[0])

    async def ping_async(self, timeout: float) -> None:
        """The pointer, read afresh: set, and its version complete."""
        if self.async_client is None:
            self.ping()
            return
        await self._bounded(self._read_async([], fresh=True), timeout)

    def ping(self) -> None:
        import redis

        try:
            self._remember(self._pointer_script(**self._pointer_args()))
        except redis.RedisError as err:
            raise _redis_error(err) from None

    def _flip(self, version: str) -> None:
        super()._flip(version)
        self._pointer_cache = None

    def close(self) -> None:
        self.client.close()


# ---- configuration --------------------------------------------------------------------


HOME = "{home}"


def portable_settings(settings: dict[str, Any], home: str | Path) -> dict[str, Any]:
    """The settings a model records: a store path under `home` written as `{home}/...`.

    A copied $REFARCH_HOME (or a model loaded on another machine) then finds the store under
    its own home at load time, not under the home the model was published from.
    """
    settings = dict(settings)
    path = settings.get("path")
    if path:
        try:
            relative = Path(path).resolve().relative_to(Path(home).resolve())
        except ValueError:  # outside the home: kept as given
            return settings
        settings["path"] = f"{HOME}/{relative.as_posix()}"
    return settings


def store_settings(conf: ServingStoreConf | dict[str, Any] | None = None) -> dict[str, Any]:
    """The store settings as a plain dict, with $REFARCH_STORE_<KEY> overrides applied.

    A model records the settings it was published with (never a password, only where to
    find it); a container overrides them from its environment (e.g. REFARCH_STORE_HOST).
    A path recorded as `{home}/...` is resolved against this process' home ($REFARCH_HOME).
    """
    if conf is None:
        settings: dict[str, Any] = {}
    elif isinstance(conf, dict):
        settings = dict(conf)
    else:
        settings = conf.model_dump()
    for key in ("kind", "path", "host", "port", "ssl", "cluster", "buckets", "password_env", "password_file", "prefix"):
        value = os.environ.get(STORE_ENV_PREFIX + key.upper())
        if value is not None and value != "":
            settings[key] = value
    settings.setdefault("kind", "sqlite")
    if "port" in settings and settings["port"] is not None:
        settings["port"] = int(settings["port"])
    for flag in ("ssl", "cluster"):
        if isinstance(settings.get(flag), str):
            settings[flag] = settings[flag].strip().lower() in ("1", "true", "yes")
    path = settings.get("path")
    if isinstance(path, str) and path.startswith(HOME):
        from refarch.runtime.paths import ProjectNotFound, local_home

        try:
            home = local_home()
        except ProjectNotFound:
            raise StoreError(
                f"serving store: the path {path} is relative to the refarch home; set $REFARCH_HOME "
                f"or {STORE_ENV_PREFIX}PATH",
                reason="misconfigured",
            ) from None
        settings["path"] = str(home / path[len(HOME) :].lstrip("/"))
    return settings


def read_password(settings: dict[str, Any]) -> str | None:
    """The Redis password from a mounted secret file or an environment variable (file first)."""
    file = settings.get("password_file")
    if file:
        path = Path(file)
        if not path.is_file():
            raise StoreError(f"serving store: password file {file} does not exist", reason="misconfigured")
        return path.read_text().strip()
    env = settings.get("password_env")
    if env:
        value = os.environ.get(env)
        if not value:
            raise StoreError(
                f"serving store: environment variable {env} (the Redis password) is not set", reason="misconfigured"
            )
        return value
    return None


def open_store(conf: ServingStoreConf | dict[str, Any] | None = None) -> RecommendationStore:
    """The store named by the target's `serving_store` settings (plus environment overrides).

    Redis is standalone unless `cluster` is true: then any node of the cluster is `host:port`,
    and the clients discover the others (redis-py's RedisCluster, sync and asyncio).
    """
    settings = store_settings(conf)
    kind = settings["kind"]
    if kind == "sqlite":
        if not settings.get("path"):
            raise StoreError("serving store: kind sqlite needs a path", reason="misconfigured")
        return SqliteStore(settings["path"])
    if kind == "redis":
        return _open_redis(settings)
    raise StoreError(f"serving store: unknown kind {kind!r} (sqlite or redis)", reason="misconfigured")


def _open_redis(settings: dict[str, Any]) -> RedisStore:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import ExponentialBackoff, NoBackoff
    from redis.retry import Retry

    where = {
        "host": settings.get("host") or "127.0.0.1",
        "port": int(settings.get("port") or 6379),
        "password": read_password(settings),
        "ssl": bool(settings.get("ssl")),
    }
    # publishing and blocking callers: two quick retries ride out a failover blip
    blocking = {
        "socket_timeout": 2,
        "socket_connect_timeout": 2,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
    }
    layout = {"prefix": settings.get("prefix") or "refarch:recommender:"}
    if settings.get("buckets"):
        layout["buckets"] = int(settings["buckets"])
    if settings.get("cluster"):
        client = redis.cluster.RedisCluster(**where, **blocking)
        # a scoring app's event loop: no retries (a dead shard is a 503 now, not after a topology dance),
        # every call bounded by the caller's timeout
        return RedisClusterStore(
            client,
            async_client=lambda: redis.asyncio.cluster.RedisCluster(**where, retry=AsyncRetry(NoBackoff(), 0)),
            **layout,
        )
    client = redis.Redis(**where, **blocking, health_check_interval=30, retry_on_timeout=True)
    return RedisStore(
        client, async_client=lambda: redis.asyncio.Redis(**where, retry=AsyncRetry(NoBackoff(), 0)), **layout
    )

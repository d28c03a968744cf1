"""The serving store: each user's precomputed top-k list, read by user id in well under a millisecond.

SQLite is the embedded default (one file, nothing to run); Redis serves production
(Azure Cache for Redis: TLS on 6380, password from a secret). Both keep the same layout:
every publish writes its lists under a new version, then one pointer flips to it, then
older versions are removed. A reader resolves the pointer and the user's list in one
atomic step (one SQL statement, one Lua script), so it sees the old set or the new one,
never a mix; a publish that fails half way removes its partial version and the old one
keeps serving.

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

# The pointer and the lists of a whole batch in one server-side step, so one batch reads one
# version. Keys are built from the pointer's value, which is fine on a single-shard cache
# (Azure Cache for Redis Basic/Standard/Premium non-clustered). Answers
# {version, popular or false, list of user 1 or false, ...}; popular only if a user is unknown.
_REDIS_GET_MANY = """
local v = redis.call('GET', KEYS[1])
if not v then return false end
local key = ARGV[1] .. v
local out = {v, false}
local unknown = false
for i = 3, #ARGV do
  local p = redis.call('HGET', key, ARGV[i])
  out[i] = p
  if not p then unknown = true end
end
if unknown then out[2] = redis.call('HGET', key, ARGV[2]) end
return out
"""

# Flip only to a version whose lists are complete (its meta key is written last).
_REDIS_FLIP = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


if sys.version_info >= (3, 11):

    async def _within(call: Awaitable[Any], timeout: float) -> Any:
        async with asyncio.timeout(timeout):  # no extra task, unlike wait_for before 3.12
            return await call

else:  # pragma: no cover - Python 3.10
    _within = asyncio.wait_for


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


class RedisStore(RecommendationStore):
    """Lists of a version in one hash `<prefix>lists:<version>`; the pointer in `<prefix>current`.

    `client` (redis.Redis) publishes and serves blocking callers; `async_client()` makes a
    redis.asyncio.Redis (no retries) for the event loop of a scoring app, one per loop: an
    asyncio client's connections belong to the loop that opened them.
    """

    def __init__(
        self, client: Any, prefix: str = "refarch:recommender:", async_client: Callable[[], Any] | None = None
    ) -> None:
        self.client = client
        self.async_client = async_client
        self.prefix = prefix
        self._get_many = client.register_script(_REDIS_GET_MANY)
        self._flip_script = client.register_script(_REDIS_FLIP)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._get_many_async: Any = None

    def _async_script(self) -> Any:
        """The read script on this event loop's client (made on first use in a loop)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._get_many_async = self.async_client().register_script(_REDIS_GET_MANY)  # type: ignore[misc]
            self._loop = loop
        return self._get_many_async

    def _lists_key(self, version: str) -> str:
        return f"{self.prefix}lists:{version}"

    def _meta_key(self, version: str) -> str:
        return f"{self.prefix}meta:{version}"

    @property
    def _pointer(self) -> str:
        return f"{self.prefix}current"

    def _script_args(self, user_ids: Sequence[int]) -> dict[str, list[Any]]:
        return {"keys": [self._pointer], "args": [f"{self.prefix}lists:", POPULAR_FIELD, *(int(u) for u in user_ids)]}

    @staticmethod
    def _decode(found: Any, n: int) -> list[UserList]:
        if not found:
            raise StoreError("serving store (redis): nothing published yet", reason="nothing published yet")
        version, popular, *payloads = found
        version = version.decode()
        if len(payloads) != n or (popular is None and any(p is None for p in payloads)):
            raise StoreError(f"serving store (redis): version {version!r} has no lists", reason="incomplete version")
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
        found = await self._bounded(self._async_script()(**self._script_args(user_ids)), timeout)
        return self._decode(found, len(user_ids))

    async def ping_async(self, timeout: float) -> None:
        """The read script for no user: the pointer is set, and the script is loaded (after a restart) for reads."""
        if self.async_client is None:
            self.ping()
            return
        self._decode(await self._bounded(self._async_script()(**self._script_args([])), timeout), 0)

    @staticmethod
    async def _bounded(call: Any, timeout: float) -> Any:
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
        found: dict[str, VersionInfo] = {}
        for key in self.client.scan_iter(match=f"{self.prefix}lists:*", count=1000):
            version = key.decode()[len(f"{self.prefix}lists:") :]
            found[version] = VersionInfo(version, 0, 0, 0.0)
        for key in self.client.scan_iter(match=f"{self.prefix}meta:*", count=1000):
            version = key.decode()[len(f"{self.prefix}meta:") :]
            meta = {k.decode(): v.decode() for k, v in self.client.hgetall(key).items()}
            found[version] = VersionInfo(
                version, int(meta.get("users", 0)), int(meta.get("depth", 0)), float(meta.get("created", 0))
            )
        return [found[v] for v in sorted(found)]

    def ping(self) -> None:
        import redis

        try:
            self.client.ping()
            version = self.current_version()
        except redis.RedisError as err:
            raise _redis_error(err) from None
        if version is None:
            raise StoreError("serving store (redis): nothing published yet", reason="nothing published yet")

    def _write_version(self, version: str, rows: Iterable[Row], popular: bytes, batch_size: int) -> tuple[int, int]:
        key = self._lists_key(version)
        users = depth = 0
        batch: dict[str, bytes] = {}
        for user_id, items, scores in rows:
            users += 1
            depth = max(depth, len(items))
            batch[str(int(user_id))] = encode_list(items, scores)
            if len(batch) >= batch_size:
                self.client.hset(key, mapping=batch)
                batch = {}
        batch[POPULAR_FIELD] = popular
        self.client.hset(key, mapping=batch)
        self.client.hset(self._meta_key(version), mapping={"users": users, "depth": depth, "created": time.time()})
        return users, depth

    def _flip(self, version: str) -> None:
        if not self._flip_script(keys=[self._pointer, self._meta_key(version)], args=[version]):
            raise StoreError(f"version {version} is incomplete; the pointer was not moved")

    def _remove_version(self, version: str) -> None:
        if version == self.current_version():
            raise StoreError(f"refusing to remove the serving version {version}")
        self.client.unlink(self._lists_key(version), self._meta_key(version))

    def close(self) -> None:
        self.client.close()
        # the async client's connections belong to the event loop that opened them and close with it


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
    for key in ("kind", "path", "host", "port", "ssl", "password_env", "password_file", "prefix"):
        value = os.environ.get(STORE_ENV_PREFIX + key.upper())
        if value is not None and value != "":
            settings[key] = value
    settings.setdefault("kind", "sqlite")
    if "port" in settings and settings["port"] is not None:
        settings["port"] = int(settings["port"])
    if isinstance(settings.get("ssl"), str):
        settings["ssl"] = settings["ssl"].strip().lower() in ("1", "true", "yes")
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
    """The store named by the target's `serving_store` settings (plus environment overrides)."""
    settings = store_settings(conf)
    kind = settings["kind"]
    if kind == "sqlite":
        if not settings.get("path"):
            raise StoreError("serving store: kind sqlite needs a path", reason="misconfigured")
        return SqliteStore(settings["path"])
    if kind == "redis":
        import redis
        import redis.asyncio
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
        client = redis.Redis(
            **where,
            socket_timeout=2,
            socket_connect_timeout=2,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
            retry_on_timeout=True,
        )
        # a scoring app's event loop: no retries, every call bounded by the caller's timeout
        return RedisStore(
            client,
            prefix=settings.get("prefix") or "refarch:recommender:",
            async_client=lambda: redis.asyncio.Redis(**where, retry=AsyncRetry(NoBackoff(), 0)),
        )
    raise StoreError(f"serving store: unknown kind {kind!r} (sqlite or redis)", reason="misconfigured")

"""The serving store, SQLite and Redis alike: lookups, atomic versioned publishing, failures."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from refarch.recommender.store import (
    RecommendationStore,
    RedisClusterStore,
    RedisStore,
    SqliteStore,
    StoreError,
    open_store,
    portable_settings,
    store_settings,
)


@pytest.fixture(params=["sqlite", "redis", "cluster"])
def store(request, tmp_path, monkeypatch) -> Iterator[RecommendationStore]:
    if request.param == "sqlite":
        s: RecommendationStore = SqliteStore(tmp_path / "serving.db")
    elif request.param == "redis":
        info = request.getfixturevalue("redis_server")
        request.getfixturevalue("redis_client")  # flushes the database
        import redis

        # few buckets: several users share one, and some bucket holds no user
        s = RedisStore(
            redis.Redis(host=info["host"], port=info["port"], password=info["password"]), prefix="test:rec:", buckets=4
        )
    else:
        cluster = request.getfixturevalue("redis_cluster")
        monkeypatch.setenv("CLUSTER_PASSWORD", cluster.password)
        s = open_store({**cluster.settings, "prefix": "test:rec:", "buckets": 4})
        assert isinstance(s, RedisClusterStore)
        s.client.flushall(target_nodes=s.client.PRIMARIES)
    yield s
    s.close()


def lists(n_users: int, tag: int, depth: int = 3):
    """User u's list encodes the publish `tag`, so a mixed read would show."""
    return [
        (u, [tag * 1000 + u * 10 + r for r in range(depth)], [1.0 - r / 10 for r in range(depth)])
        for u in range(1, n_users + 1)
    ]


def test_lookup_known_and_unknown_user(store):
    version = store.publish(lists(3, tag=1), popular_items=[7, 8, 9], popular_scores=[30.0, 20.0, 10.0])
    got = store.get(2)
    assert (got.version, got.items, got.scores, got.fallback) == (version, [1020, 1021, 1022], [1.0, 0.9, 0.8], False)
    unknown = store.get(999)
    assert (unknown.items, unknown.scores, unknown.fallback) == ([7, 8, 9], [30.0, 20.0, 10.0], True)
    assert store.current_version() == version
    store.ping()


def test_nothing_published_is_a_clear_error(store):
    with pytest.raises(StoreError, match="nothing published"):
        store.get(1)
    with pytest.raises(StoreError, match="nothing published"):
        store.ping()


def test_publish_flips_and_removes_the_old_version(store):
    v1 = store.publish(lists(3, tag=1), [7], [1.0])
    v2 = store.publish(lists(2, tag=2), [8], [1.0])
    assert v2 > v1
    assert store.current_version() == v2
    assert [v.version for v in store.versions()] == [v2]
    assert store.get(1).items == [2010, 2011, 2012]
    assert store.get(3).fallback  # user 3 is not in the new set
    info = store.versions()[0]
    assert (info.users, info.depth) == (2, 3)


def test_failed_publish_keeps_the_old_version_serving(store):
    v1 = store.publish(lists(3, tag=1), [7], [1.0])

    def broken():
        yield from lists(3, tag=2)[:2]
        raise RuntimeError("source died half way")

    with pytest.raises(RuntimeError, match="half way"):
        store.publish(broken(), [8], [1.0], batch_size=1)
    assert store.current_version() == v1
    assert store.get(1).items == [1010, 1011, 1012]
    assert [v.version for v in store.versions()] == [v1]  # the partial version is gone


def test_bad_publish_input_is_rejected_before_anything_changes(store):
    v1 = store.publish(lists(1, tag=1), [7], [1.0])
    with pytest.raises(ValueError, match="popular list is empty"):
        store.publish(lists(1, tag=2), [], [])
    with pytest.raises(ValueError, match="2 items but 1 scores"):
        store.publish([(1, [1, 2], [0.5])], [7], [1.0])
    with pytest.raises(ValueError, match="no user lists"):
        store.publish([], [7], [1.0])
    assert store.current_version() == v1
    assert [v.version for v in store.versions()] == [v1]


def test_readers_never_see_a_mix_while_publishing(store):
    store.publish(lists(50, tag=1), [7], [1.0])
    seen: list[tuple[str, int]] = []
    mixed: list[tuple] = []
    stop = threading.Event()

    def reader() -> None:
        for _ in range(20000):  # bounded
            if stop.is_set():
                break
            got = store.get(25)
            tag = got.items[0] // 1000
            seen.append((got.version, tag))
            if any(i // 1000 != tag for i in got.items):
                mixed.append((got.version, got.items))

    t = threading.Thread(target=reader)
    t.start()
    versions = [store.publish(lists(50, tag=tag), [7], [1.0], batch_size=10) for tag in (2, 3, 4)]
    stop.set()
    t.join(timeout=30)
    assert not mixed
    # each version always came with its own tag: never a pointer from one publish and lists of another
    tag_of = {v: i + 2 for i, v in enumerate(versions)}
    for version, tag in seen:
        if version in tag_of:
            assert tag == tag_of[version]
    assert store.get(25).items[0] // 1000 == 4


def test_settings_from_environment_and_password_sources(monkeypatch, tmp_path):
    monkeypatch.setenv("REFARCH_STORE_KIND", "redis")
    monkeypatch.setenv("REFARCH_STORE_PORT", "6380")
    monkeypatch.setenv("REFARCH_STORE_SSL", "true")
    s = store_settings({"kind": "sqlite", "path": "/x.db", "host": "cache.example"})
    assert (s["kind"], s["host"], s["port"], s["ssl"]) == ("redis", "cache.example", 6380, True)
    monkeypatch.delenv("REFARCH_STORE_KIND")
    monkeypatch.delenv("REFARCH_STORE_PORT")
    monkeypatch.delenv("REFARCH_STORE_SSL")
    with pytest.raises(StoreError, match="NOT_SET_PASSWORD"):
        open_store({"kind": "redis", "password_env": "NOT_SET_PASSWORD"})
    with pytest.raises(StoreError, match="does not exist"):
        open_store({"kind": "redis", "password_file": str(tmp_path / "missing")})
    with pytest.raises(StoreError, match="unknown kind"):
        open_store({"kind": "cosmos"})
    with pytest.raises(StoreError, match="needs a path"):
        open_store({"kind": "sqlite"})


def test_redis_password_from_a_secret_file(redis_server, redis_client, tmp_path):
    secret = tmp_path / "redis-password"
    secret.write_text(redis_server["password"] + "\n")
    store = open_store(
        {"kind": "redis", "host": redis_server["host"], "port": redis_server["port"], "password_file": str(secret)}
    )
    version = store.publish(lists(1, tag=1), [7], [1.0])
    assert store.get(1).version == version
    store.close()
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    bad = open_store(
        {"kind": "redis", "host": redis_server["host"], "port": redis_server["port"], "password_file": str(wrong)}
    )
    with pytest.raises(StoreError, match="redis"):
        bad.ping()
    bad.close()


def test_get_many_answers_each_user_from_one_version(store):
    version = store.publish(lists(3, tag=1), popular_items=[7, 8], popular_scores=[2.0, 1.0])
    got = store.get_many([3, 99, 1])
    assert [(g.version, g.items, g.fallback) for g in got] == [
        (version, [1030, 1031, 1032], False),
        (version, [7, 8], True),
        (version, [1010, 1011, 1012], False),
    ]
    assert asyncio.run(store.get_many_async([1], timeout=1.0))[0].items == [1010, 1011, 1012]
    asyncio.run(store.ping_async(timeout=1.0))


def _timed(coro_factory, timeout: float) -> tuple[float, StoreError]:
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        asyncio.run(coro_factory(timeout))
    return time.monotonic() - started, caught.value


def test_async_reads_of_a_frozen_or_killed_redis_fail_within_the_timeout(own_redis):
    """SIGSTOP: connections open, nothing answers. SIGKILL: nothing listens. Neither waits past the timeout."""
    store = open_store(own_redis.settings)
    store.publish(lists(2, tag=1), [7], [1.0])
    assert asyncio.run(store.get_many_async([1, 2], timeout=1.0))[1].items == [1020, 1021, 1022]
    own_redis.proc.send_signal(signal.SIGSTOP)
    try:
        seconds, err = _timed(lambda t: store.get_many_async([1], t), 0.05)
        assert err.reason == "timed out" and seconds < 0.5
        seconds, err = _timed(store.ping_async, 0.05)
        assert err.reason == "timed out" and seconds < 0.5
    finally:
        own_redis.proc.send_signal(signal.SIGCONT)
    own_redis.proc.kill()
    own_redis.proc.wait(timeout=10)
    seconds, err = _timed(lambda t: store.get_many_async([1], t), 0.05)
    assert err.reason in ("unreachable", "timed out") and seconds < 0.5
    assert str(own_redis.port) not in err.reason
    store.close()


def test_a_store_path_under_the_home_is_recorded_relative_to_it(tmp_path, monkeypatch):
    home = tmp_path / "home"
    recorded = portable_settings({"kind": "sqlite", "path": str(home / "serving.db")}, home)
    assert recorded["path"] == "{home}/serving.db"
    elsewhere = portable_settings({"kind": "sqlite", "path": "/data/serving.db"}, home)
    assert elsewhere["path"] == "/data/serving.db"
    copy = tmp_path / "copied-home"
    monkeypatch.setenv("REFARCH_HOME", str(copy))
    assert store_settings(recorded)["path"] == str(copy.resolve() / "serving.db")

"""The serving store on a real 3-node Redis Cluster: lists spread over the shards, versions stay whole,
and a primary killed under load gives clean 503s (never a 500, never another user's list).

The generic store tests (test_serving_store.py) run on the cluster too; these are the cluster's own.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter

import httpx
import pytest

from refarch.recommender.store import RedisClusterStore, bucket_of, open_store
from refarch.serving.app import create_app
from refarch.serving.auth import ApiKeys

KEY = "cluster-key-0123456789abcdef"


def lists(users: range, tag: int, depth: int = 3):
    """User u's list names u and the publish `tag`: a list from another user or version would show."""
    return [
        (u, [tag * 1_000_000 + u * 10 + r for r in range(depth)], [1.0 - r / 10 for r in range(depth)]) for u in users
    ]


def owner_of(items: list[int]) -> tuple[int, int]:
    """(tag, user) a list was published for; every item of a whole list agrees."""
    owners = {(i // 1_000_000, i % 1_000_000 // 10) for i in items}
    assert len(owners) == 1, items
    return owners.pop()


@pytest.fixture()
def cluster_store(redis_cluster, monkeypatch):
    monkeypatch.setenv("CLUSTER_PASSWORD", redis_cluster.password)
    store = open_store({**redis_cluster.settings, "prefix": "spread:", "buckets": 32})
    store.client.flushall(target_nodes=store.client.PRIMARIES)
    yield store
    store.close()


def test_the_lists_of_one_version_spread_over_every_shard(cluster_store, redis_cluster):
    import redis

    version = cluster_store.publish(lists(range(1, 201), tag=1), [7], [1.0])
    per_node = {}
    for port in redis_cluster.ports:
        with redis.Redis(host="127.0.0.1", port=port, password=redis_cluster.password) as node:
            per_node[port] = [k.decode() for k in node.keys(f"spread:lists:{version}:*")]
    assert sum(len(keys) for keys in per_node.values()) == 32  # every bucket, even one no user falls in
    assert all(len(keys) >= 3 for keys in per_node.values()), {p: len(k) for p, k in per_node.items()}
    # the pointer, the metadata and the version index share one slot: the flip is one script
    slots = {
        cluster_store.client.keyslot(k) for k in ("{spread:}current", f"{{spread:}}meta:{version}", "{spread:}versions")
    }
    assert len(slots) == 1
    assert cluster_store.get_many([5, 150, 999]) == [
        cluster_store.get(5),
        cluster_store.get(150),
        cluster_store.get(999),
    ]
    assert [owner_of(g.items) for g in cluster_store.get_many([5, 150])] == [(1, 5), (1, 150)]
    assert cluster_store.get(999).fallback


def test_buckets_agree_between_python_and_the_standalone_script(redis_server, redis_client):
    """The standalone read script finds a user's bucket from its decimal id; Python from the int."""
    import redis

    from refarch.recommender.store import RedisStore

    client = redis.Redis(host=redis_server["host"], port=redis_server["port"], password=redis_server["password"])
    store = RedisStore(client, prefix="ids:", buckets=7)
    users = [0, 1, 6, 7, 13, 2**31 + 5, 2**53 + 1, 2**63 - 1]
    store.publish([(u, [u % 1000], [1.0]) for u in users], [999_999], [1.0])
    assert [g.items for g in store.get_many(users)] == [[u % 1000] for u in users]
    assert [bucket_of(u, 7) for u in (7, 13, 2**63 - 1)] == [0, 6, (2**63 - 1) % 7]
    store.close()


def test_a_reader_holding_an_old_pointer_reads_the_new_version_whole(redis_cluster, monkeypatch):
    """Another process flips and removes the version a reader's cached pointer names: the reader
    finds the bucket gone and reads the whole batch again from the new pointer."""
    monkeypatch.setenv("CLUSTER_PASSWORD", redis_cluster.password)
    settings = {**redis_cluster.settings, "prefix": "stale:", "buckets": 8}
    publisher = open_store(settings)
    publisher.client.flushall(target_nodes=publisher.client.PRIMARIES)
    reader = open_store(settings)
    assert isinstance(reader, RedisClusterStore)
    reader.pointer_ttl_s = 3600.0  # it would keep the old pointer for an hour
    v1 = publisher.publish(lists(range(1, 41), tag=1), [7], [1.0])
    assert {g.version for g in reader.get_many(list(range(1, 41)))} == {v1}
    v2 = publisher.publish(lists(range(1, 41), tag=2), [8], [1.0])
    got = reader.get_many(list(range(1, 41)))
    assert {g.version for g in got} == {v2}
    assert [owner_of(g.items) for g in got] == [(2, u) for u in range(1, 41)]
    # the same from the event loop
    v3 = publisher.publish(lists(range(1, 41), tag=3), [9], [1.0])
    got = asyncio.run(reader.get_many_async([3, 17, 40, 1000], timeout=2.0))
    assert {g.version for g in got} == {v3}
    assert [owner_of(g.items) for g in got[:3]] == [(3, 3), (3, 17), (3, 40)] and got[3].fallback
    assert [v.version for v in publisher.versions()] == [v3]
    publisher.close()
    reader.close()


def test_async_readers_never_see_a_mix_while_another_process_publishes(redis_cluster, monkeypatch):
    monkeypatch.setenv("CLUSTER_PASSWORD", redis_cluster.password)
    settings = {**redis_cluster.settings, "prefix": "mix:", "buckets": 16}
    publisher = open_store(settings)
    publisher.client.flushall(target_nodes=publisher.client.PRIMARIES)
    publisher.publish(lists(range(1, 61), tag=1), [7], [1.0])
    reader = open_store(settings)
    reader.pointer_ttl_s = 0.01
    stop = threading.Event()
    seen: list[tuple[str, set[int]]] = []

    async def read() -> None:
        rng = random.Random(3)
        while not stop.is_set():
            batch = rng.sample(range(1, 61), 6)
            got = await reader.get_many_async(batch, timeout=2.0)
            owners = [owner_of(g.items) for g in got]
            assert [u for _, u in owners] == batch  # each user's own list
            seen.append((got[0].version, {t for t, _ in owners}))
            assert {g.version for g in got} == {got[0].version}

    thread = threading.Thread(target=lambda: asyncio.run(read()))
    thread.start()
    try:
        versions = [publisher.publish(lists(range(1, 61), tag=t), [7], [1.0], batch_size=7) for t in (2, 3, 4)]
    finally:
        stop.set()
        thread.join(timeout=30)
    assert seen and all(len(tags) == 1 for _, tags in seen)  # never two publishes in one batch
    tag_of = {v: t for v, t in zip(versions, (2, 3, 4), strict=True)}
    assert all(tags == {tag_of[v]} for v, tags in seen if v in tag_of)
    publisher.close()
    reader.close()


@pytest.mark.slow
def test_a_primary_killed_mid_read_gives_clean_503s(own_cluster, tiny_recommender, server_thread, monkeypatch):
    """The served model reads the cluster; one primary is SIGKILLed while requests are in flight.

    Every answer is a 200 with the asking users' own lists, or a 503 with Retry-After: never a
    500, never a dropped connection, never a list of another user. /health stays up. (Once five
    reads failed the circuit opens, and every read is a 503 until a probe finds the store whole.)
    """
    store = open_store({**own_cluster.settings, "prefix": "kill:"})
    store.publish(lists(range(1, 301), tag=1), [7], [1.0])
    pointer_node = store.client.get_node_from_key("{kill:}current").port
    victim = next(i for i, p in enumerate(own_cluster.ports) if p not in (pointer_node, own_cluster.ports[0]))
    store.close()
    for name, value in {**own_cluster.settings, "prefix": "kill:"}.items():
        monkeypatch.setenv(f"REFARCH_STORE_{name.upper()}", str(value))
    statuses: Counter = Counter()
    problems: list[str] = []
    health: list[int] = []
    stop = threading.Event()

    def load(seed: int, url: str) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=5) as client:
            while not stop.is_set():
                users = rng.sample(range(1, 301), rng.choice([1, 1, 4]))
                try:
                    r = client.post("/invocations", json={"inputs": [{"user_id": u, "k": 3} for u in users]})
                except httpx.TransportError as err:
                    problems.append(f"transport error {type(err).__name__}")
                    continue
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    got = [owner_of([i["item_id"] for i in p["items"]]) for p in r.json()["predictions"]]
                    if got != [(1, u) for u in users]:
                        problems.append(f"wrong lists for {users}: {got}")
                elif r.status_code == 503:
                    if r.headers.get("retry-after") != "1" or r.json()["error"]["code"] != "unavailable":
                        problems.append(f"503 without its shape: {r.text}")
                else:
                    problems.append(f"{r.status_code}: {r.text[:200]}")

    app = create_app(tiny_recommender["uri"], api_keys=ApiKeys([KEY]))
    with server_thread(app) as srv:
        threads = [threading.Thread(target=load, args=(seed, srv.url)) for seed in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        before = sum(statuses.values())
        own_cluster.kill(victim)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            health.append(httpx.get(srv.url + "/health", timeout=5).status_code)
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        ready = httpx.get(srv.url + "/ready", timeout=5)
    assert before > 0 and statuses[200] >= before, statuses
    assert not problems, problems[:5]
    assert set(statuses) <= {200, 503} and statuses[503] > 0, statuses
    assert set(health) == {200}
    assert ready.status_code == 503 and str(own_cluster.ports[victim]) not in ready.text

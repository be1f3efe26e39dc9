"""The store: resourceVersions, optimistic concurrency, ordering, watch replay and 410 Gone."""

from __future__ import annotations

import asyncio
import threading

import pytest

from kubesim.errors import ApiError
from kubesim.store import Event, Store, Watcher

CM = ("", "configmaps")


def cm(name: str, namespace: str = "default", **data: str) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": namespace}, "data": data}


def test_every_write_takes_the_next_resource_version() -> None:
    store = Store()
    a = store.create(CM, cm("a"))
    b = store.create(CM, cm("b"))
    assert (a["metadata"]["resourceVersion"], b["metadata"]["resourceVersion"]) == ("1", "2")
    store.update(CM, cm("a", k="v"), expected_rv=1)
    gone = store.delete(CM, "default", "b")
    assert gone["metadata"]["resourceVersion"] == "4" and store.resource_version == 4


def test_conflicts_and_missing_objects() -> None:
    store = Store()
    store.create(CM, cm("a"))
    with pytest.raises(ApiError) as exists:
        store.create(CM, cm("a"))
    assert exists.value.code == 409 and exists.value.reason == "AlreadyExists"
    store.update(CM, cm("a", k="1"), expected_rv=1)
    with pytest.raises(ApiError) as stale:
        store.update(CM, cm("a", k="2"), expected_rv=1)
    assert stale.value.reason == "Conflict"
    with pytest.raises(ApiError) as missing:
        store.delete(CM, "default", "zzz")
    assert missing.value.code == 404


def test_list_is_sorted_and_filtered() -> None:
    store = Store()
    for ns, name in (("b", "x"), ("a", "y"), ("a", "x")):
        store.create(CM, cm(name, ns))
    items, rv = store.list(CM)
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items] == [("a", "x"), ("a", "y"), ("b", "x")]
    assert rv == 3
    assert [o["metadata"]["name"] for o in store.list(CM, "a", lambda o: o["metadata"]["name"] == "y")[0]] == ["y"]


def test_watch_replays_from_a_resource_version_and_reports_gone() -> None:
    store = Store(event_log_size=3)
    loop = asyncio.new_event_loop()
    try:
        for i in range(3):
            store.create(CM, cm(f"c{i}"))
        watcher = Watcher(CM, "default", lambda o: True, loop)
        replay = store.watch(watcher, since_rv=1)
        assert [(e.type, e.obj["metadata"]["name"]) for e in replay] == [("ADDED", "c1"), ("ADDED", "c2")]
        store.delete(CM, "default", "c0")
        loop.run_until_complete(asyncio.sleep(0))
        event = watcher.queue.get_nowait()
        assert isinstance(event, Event) and event.type == "DELETED" and event.rv == 4
        store.unwatch(watcher)
        with pytest.raises(ApiError) as gone:
            store.watch(Watcher(CM, None, lambda o: True, loop), since_rv=0)
        assert gone.value.code == 410
        initial = store.watch(Watcher(CM, None, lambda o: True, loop), since_rv=None)
        assert [e.obj["metadata"]["name"] for e in initial] == ["c1", "c2"]
    finally:
        loop.close()


def test_concurrent_writers_never_lose_updates() -> None:
    store = Store()
    store.create(CM, cm("counter", n="0"))

    def bump() -> None:
        for _ in range(200):
            while True:
                current = store.get(CM, "default", "counter")
                assert current is not None
                new = cm("counter", n=str(int(current["data"]["n"]) + 1))
                try:
                    store.update(CM, new, expected_rv=int(current["metadata"]["resourceVersion"]))
                    break
                except ApiError:
                    continue

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.get(CM, "default", "counter")
    assert final is not None and final["data"]["n"] == "800"


def test_snapshot_restore_round_trip() -> None:
    store = Store()
    store.create(CM, cm("a", k="1"))
    store.create(("apps", "deployments"), {"metadata": {"name": "d", "namespace": "default"}})
    again = Store()
    again.restore(store.snapshot())
    assert again.get(CM, "default", "a") == store.get(CM, "default", "a")
    assert again.resource_version == 2
    assert again.create(CM, cm("b"))["metadata"]["resourceVersion"] == "3"

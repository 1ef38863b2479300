"""The local SQLite store: all-or-nothing writes, strictly increasing revisions, waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smi.store import sqlite as sqlite_store
from smi.store.base import Change, EndpointRecord, ObjectKey, Snapshot, StoreError
from smi.store.sqlite import SQLiteStore


def split(name: str, *, weight: int = 1, ns: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": weight}]},
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "store.db")
    yield s
    s.close()


def test_apply_creates_updates_and_reports_unchanged(store: SQLiteStore) -> None:
    first = store.apply([split("a"), split("b")])
    assert first.revision == 1
    assert [a for _, a in first.results] == ["created", "created"]
    again = store.apply([split("a"), split("b", weight=5)])
    assert [a for _, a in again.results] == ["unchanged", "configured"]
    assert again.revision == 2
    same = store.apply([split("a")])
    assert same.revision == 2 and not same.changed
    body = store.snapshot().get(ObjectKey.of(split("b")))
    assert body is not None and body.body["spec"]["backends"][0]["weight"] == 5
    assert body.revision == 2


def test_missing_namespace_defaults_and_cluster_scoped_has_none(store: SQLiteStore) -> None:
    doc = split("a")
    del doc["metadata"]["namespace"]
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    store.apply([doc, ns])
    keys = {str(o.key) for o in store.snapshot().objects}
    assert keys == {"default/TrafficSplit/a", "Namespace/shop"}


def test_a_refused_check_writes_nothing(store: SQLiteStore) -> None:
    store.apply([split("a")])

    def refuse(snap: Snapshot, changes: list[Change]) -> None:
        assert snap.revision == 1
        assert [c.operation for c in changes] == ["UPDATE", "CREATE"]
        raise RuntimeError("denied")

    with pytest.raises(RuntimeError, match="denied"):
        store.apply([split("a", weight=9), split("c")], check=refuse)
    snap = store.snapshot()
    assert snap.revision == 1
    assert [o.key.name for o in snap.objects] == ["a"]
    assert snap.objects[0].body["spec"]["backends"][0]["weight"] == 1


def test_dry_run_reports_but_keeps_state(store: SQLiteStore) -> None:
    outcome = store.apply([split("a")], dry_run=True)
    assert outcome.dry_run and [a for _, a in outcome.results] == ["created"]
    assert store.snapshot().objects == () and store.revision() == 0


def test_duplicate_in_one_apply_and_bad_documents_are_refused(store: SQLiteStore) -> None:
    with pytest.raises(StoreError, match="appears twice"):
        store.apply([split("a"), split("a", weight=2)])
    with pytest.raises(StoreError, match=r"metadata\.name missing"):
        store.apply([{"apiVersion": "v1", "kind": "Service", "metadata": {}}])
    assert store.revision() == 0


def test_identical_copies_in_one_apply_are_one_object(store: SQLiteStore) -> None:
    # `smictl validate` passes a set with the same object twice, identically (a warning): an
    # apply of that set refused it (SMI2007), so deploy failed what CI had passed.
    reordered = {k: split("a")[k] for k in reversed(split("a"))}
    out = store.apply([split("a"), split("b"), reordered])
    assert [(str(k), a) for k, a in out.results] == [
        ("shop/TrafficSplit/a", "created"),
        ("shop/TrafficSplit/b", "created"),
    ]
    assert out.revision == 1 and len(store.snapshot().objects) == 2
    seen: list[tuple[int, str]] = []

    def record(snap: Snapshot, changes: list[Change]) -> None:
        seen.extend((c.index, str(c.key)) for c in changes)

    store.apply([split("c"), split("a", weight=3), split("c")], check=record)
    assert seen == [(0, "shop/TrafficSplit/c"), (1, "shop/TrafficSplit/a")]  # indexes as sent
    with pytest.raises(StoreError) as info:
        store.apply([split("a"), split("a", weight=2)])
    assert [(d.code, d.message) for d in info.value.diagnostics] == [
        ("SMI2007", "shop/TrafficSplit/a appears twice in one apply, with different content")
    ]


def test_delete_is_all_or_nothing(store: SQLiteStore) -> None:
    store.apply([split("a"), split("b")])
    missing = ObjectKey("split.smi-spec.io", "TrafficSplit", "shop", "zzz")
    with pytest.raises(StoreError, match="not found") as info:
        store.delete([ObjectKey.of(split("a")), missing])
    assert info.value.diagnostics[0].code == "SMI7004"
    assert len(store.snapshot().objects) == 2
    out = store.delete([ObjectKey.of(split("a")), missing], ignore_missing=True)
    assert out.revision == 2 and [a for _, a in out.results] == ["deleted"]
    assert [o.key.name for o in store.snapshot().objects] == ["b"]


def test_endpoints_register_once_and_only_their_owner_removes_them(store: SQLiteStore) -> None:
    rec = EndpointRecord("127.0.0.1", 15006, "spiffe://cluster.local/ns/shop/sa/web", ("shop/web",))
    assert store.register_endpoint(rec) == 1
    assert store.register_endpoint(rec) == 1  # the same registration changes nothing
    assert store.snapshot().endpoints == (rec,)
    with pytest.raises(StoreError, match="belongs to"):
        store.deregister_endpoint(address="127.0.0.1", port=15006, identity="spiffe://x/ns/a/sa/b")
    assert store.deregister_endpoint(address="127.0.0.1", port=15006, identity=rec.identity) == 2
    assert store.snapshot().endpoints == ()


def test_an_endpoint_of_another_identity_is_not_replaced_and_one_identity_is_bounded(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = EndpointRecord("10.0.0.7", 15006, "spiffe://cluster.local/ns/shop/sa/web", ("shop/web",))
    evil = EndpointRecord("10.0.0.7", 15006, "spiffe://cluster.local/ns/evil/sa/x", ("evil/x",))
    store.register_endpoint(web, now=100.0)
    with pytest.raises(StoreError, match=r"registered by spiffe://cluster\.local/ns/shop/sa/web "):
        store.register_endpoint(evil, now=101.0)  # before: it replaced web's endpoint
    assert store.snapshot().endpoints == (web,)
    store.expire_endpoints(renewed_before=150.0)  # web's lease ends: the address is free
    store.register_endpoint(evil, now=200.0)
    assert store.snapshot().endpoints == (evil,)
    monkeypatch.setattr(sqlite_store, "MAX_ENDPOINTS_PER_IDENTITY", 3)
    for port in (1, 2):
        store.register_endpoint(EndpointRecord("10.0.0.8", port, evil.identity, ("evil/x",)))
    with pytest.raises(StoreError, match="already has 3 endpoints"):
        store.register_endpoint(EndpointRecord("10.0.0.8", 3, evil.identity, ("evil/x",)))
    store.register_endpoint(EndpointRecord("10.0.0.8", 1, evil.identity, ("evil/x",)))  # renewal


def test_two_stores_on_one_file_see_each_other(tmp_path: Path) -> None:
    a, b = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db", poll_interval=0.01)
    try:
        a.apply([split("a")])
        assert b.revision() == 1
        assert [o.key.name for o in b.snapshot().objects] == ["a"]
    finally:
        a.close()
        b.close()


def test_wait_for_change_wakes_on_a_write_and_times_out_without_one(tmp_path: Path) -> None:
    writer = SQLiteStore(tmp_path / "s.db")
    waiter = SQLiteStore(tmp_path / "s.db", poll_interval=0.02)
    try:
        started = time.monotonic()
        assert waiter.wait_for_change(0, timeout=0.2) == 0
        assert time.monotonic() - started >= 0.19
        timer = threading.Timer(0.1, lambda: writer.apply([split("a")]))
        timer.start()
        started = time.monotonic()
        assert waiter.wait_for_change(0, timeout=10) == 1
        assert time.monotonic() - started < 5
        timer.join()
    finally:
        writer.close()
        waiter.close()


def test_concurrent_applies_lose_nothing_and_revisions_strictly_increase(tmp_path: Path) -> None:
    stores = [SQLiteStore(tmp_path / "s.db") for _ in range(4)]
    revisions: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        for j in range(10):
            out = stores[i].apply([split(f"s{i}-{j}")])
            with lock:
                revisions.append(out.revision)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert sorted(revisions) == list(range(1, 41))  # distinct: no two writes share one
        assert len(stores[0].snapshot().objects) == 40
    finally:
        for s in stores:
            s.close()


def test_an_unopenable_path_is_an_smictl_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError) as info:
        SQLiteStore(blocker / "store.db")
    assert info.value.diagnostics[0].code == "SMI7005"


def test_a_renewal_keeps_the_revision_and_an_expired_lease_drops_the_endpoint(
    store: SQLiteStore,
) -> None:
    web = EndpointRecord("127.0.0.1", 15006, "spiffe://cluster.local/ns/shop/sa/web", ("shop/web",))
    api = EndpointRecord("127.0.0.2", 15006, "spiffe://cluster.local/ns/shop/sa/api", ("shop/api",))
    assert store.register_endpoint(web, now=100.0) == 1
    assert store.register_endpoint(api, now=100.0) == 2
    assert store.register_endpoint(web, now=150.0) == 2  # renewed: no new revision
    assert store.expire_endpoints(renewed_before=120.0) == 3  # api was last renewed at 100
    assert store.snapshot().endpoints == (web,)
    assert store.expire_endpoints(renewed_before=120.0) == 3  # nothing left to expire
    assert store.expire_endpoints(renewed_before=151.0) == 4
    assert store.snapshot().endpoints == ()


def test_a_store_written_before_leases_opens_and_keeps_its_endpoints(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('revision', 7);"
        "CREATE TABLE endpoints (address TEXT NOT NULL, port INTEGER NOT NULL,"
        " identity TEXT NOT NULL, services TEXT NOT NULL, revision INTEGER NOT NULL,"
        " PRIMARY KEY (address, port));"
        "INSERT INTO endpoints VALUES ('127.0.0.1', 15006, 'spiffe://cluster.local/ns/a/sa/b',"
        " '[\"a/b\"]', 7);"
    )
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    try:
        assert [e.address for e in store.snapshot().endpoints] == ["127.0.0.1"]
        # Never renewed under leases: the first expiry after start-up's grace drops it.
        assert store.expire_endpoints(renewed_before=1.0) == 8
    finally:
        store.close()


def _deployment(api_version: str, account: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"spec": {"serviceAccountName": account, "containers": []}}},
    }


@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet", "ReplicaSet"])
def test_a_workload_in_extensions_and_in_apps_is_one_object(store: SQLiteStore, kind: str) -> None:
    """An `extensions/v1beta1` Deployment and an `apps/v1` one of a name were stored as two
    objects (keyed by group), `get` listed both, and a dump of the store failed `validate`
    (SMI3008): to the API server, and kubectl, they are one object."""
    old, new = _deployment("extensions/v1beta1", "web"), _deployment("apps/v1", "web-2")
    old["kind"] = new["kind"] = kind
    assert ObjectKey.of(old) == ObjectKey.of(new)
    assert [a for _, a in store.apply([old]).results] == ["created"]
    assert [a for _, a in store.apply([new]).results] == ["configured"]
    stored = [o for o in store.snapshot().objects if o.key.kind == kind]
    assert [o.body["apiVersion"] for o in stored] == ["apps/v1"]

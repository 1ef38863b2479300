"""The SQLite store's lease expiry inside and beside other writes, and deletes of several
missing or repeated objects (acceptance audit of `smictl serve`)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from smi.store.base import Change, EndpointRecord, ObjectKey, Snapshot, StoreError
from smi.store.sqlite import SQLiteStore

WEB = EndpointRecord("127.0.0.1", 15006, "spiffe://cluster.local/ns/shop/sa/web", ("shop/web",))


def service(name: str, ns: str = "shop") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}}


def key(name: str, ns: str = "shop") -> ObjectKey:
    return ObjectKey("", "Service", ns, name)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "store.db")
    yield s
    s.close()


# --- expiry inside a write's check ---------------------------------------------------------------


def test_an_apply_whose_check_asks_for_expiry_is_applied_and_the_lease_expires_after(
    store: SQLiteStore,
) -> None:
    """The control plane's admission check compiles a view, which checks leases: inside the
    apply's transaction that was a nested BEGIN ("cannot start a transaction within a
    transaction") and failed every apply while a lease had lapsed."""
    store.register_endpoint(WEB, now=100.0)
    seen: list[int | None] = []

    def check(snap: Snapshot, changes: Sequence[Change]) -> None:
        seen.append(store.expire_endpoints(renewed_before=200.0))

    outcome = store.apply([service("web")], check=check)
    assert outcome.changed and outcome.revision == 2
    assert seen == [None]  # nothing expired inside the write: asked again later
    assert store.snapshot().endpoints == (WEB,)
    assert store.expire_endpoints(renewed_before=200.0) == 3
    assert store.snapshot().endpoints == ()


def test_a_delete_whose_check_asks_for_expiry_is_applied(store: SQLiteStore) -> None:
    store.apply([service("web")])
    store.register_endpoint(WEB, now=100.0)

    def check(snap: Snapshot, changes: Sequence[Change]) -> None:
        assert store.expire_endpoints(renewed_before=200.0, wait=False) is None

    assert store.delete([key("web")], check=check).results == ((key("web"), "deleted"),)


# --- expiry beside another process's write ------------------------------------------------------


def test_expiry_without_waiting_gives_up_at_once_while_another_write_holds_the_lock(
    store: SQLiteStore, tmp_path: Path
) -> None:
    store.register_endpoint(WEB, now=100.0)
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another worker in the middle of its write
        started = time.monotonic()
        assert store.expire_endpoints(renewed_before=200.0, wait=False) is None
        assert time.monotonic() - started < 1.0  # not the 30 s busy timeout
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert store.snapshot().endpoints == (WEB,)
    # Not left without a wait: the next write on this connection waits for the lock again.
    assert store.expire_endpoints(renewed_before=200.0, wait=False) == 2
    assert store.snapshot().endpoints == ()


def test_expiry_that_waits_takes_the_lock_once_the_other_write_ends(
    store: SQLiteStore, tmp_path: Path
) -> None:
    store.register_endpoint(WEB, now=100.0)
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: (other.execute("ROLLBACK"), other.close()))
    release.start()
    try:
        assert store.expire_endpoints(renewed_before=200.0) == 2
    finally:
        release.join()
    assert store.snapshot().endpoints == ()


def test_expiry_without_waiting_restores_the_busy_timeout(store: SQLiteStore) -> None:
    store.register_endpoint(WEB, now=100.0)
    store.expire_endpoints(renewed_before=200.0, wait=False)
    conn = store._conn()
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


# --- deletes ---------------------------------------------------------------------------------


def test_a_delete_of_several_missing_objects_names_every_one(store: SQLiteStore) -> None:
    store.apply([service("web")])
    with pytest.raises(StoreError) as info:
        store.delete([key("gone"), key("web"), key("also-gone")])
    diags = info.value.diagnostics
    assert [(d.code, d.message) for d in diags] == [
        ("SMI7004", "shop/Service/gone not found"),
        ("SMI7004", "shop/Service/also-gone not found"),
    ]
    assert store.snapshot().get(key("web")) is not None  # nothing was deleted


def test_a_delete_naming_one_object_twice_is_refused_like_an_apply(store: SQLiteStore) -> None:
    store.apply([service("web"), service("api")])
    with pytest.raises(StoreError) as info:
        store.delete([key("web"), key("api"), key("web")])
    (diag,) = info.value.diagnostics
    assert diag.code == "SMI2007"
    assert diag.message == "shop/Service/web appears twice in one delete"
    assert len(store.snapshot().objects) == 2 and store.revision() == 1
    with pytest.raises(StoreError, match="appears twice in one delete"):
        store.delete([key("gone"), key("gone")], ignore_missing=True)

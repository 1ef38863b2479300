"""The SQLite store at its edges: a disk that fills mid-write, every worker opening (and
migrating) one file at once, damaged files, leftovers of a crash, odd names and sizes."""

from __future__ import annotations

import multiprocessing
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smi.store.base import ObjectKey, StoreError
from smi.store.sqlite import SQLiteStore

pytestmark = pytest.mark.timeout(60)

OLD_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta VALUES ('revision', 7);"
    "CREATE TABLE endpoints (address TEXT NOT NULL, port INTEGER NOT NULL,"
    " identity TEXT NOT NULL, services TEXT NOT NULL, revision INTEGER NOT NULL,"
    " PRIMARY KEY (address, port));"
)


def split(
    name: str, *, weight: int = 1, version: str = "v1alpha4", pad: str = ""
) -> dict[str, Any]:
    return {
        "apiVersion": f"split.smi-spec.io/{version}",
        "kind": "TrafficSplit",
        "metadata": {"name": name, "namespace": "shop", "annotations": {"pad": pad}},
        "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": weight}]},
    }


def old_store(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    conn.commit()
    conn.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "store.db")
    yield s
    s.close()


# --- a write that fails mid-way ---------------------------------------------------------------


def test_a_full_disk_mid_apply_reports_the_full_disk_and_writes_nothing(
    store: SQLiteStore,
) -> None:
    store.apply([split("a")])
    conn = store._conn()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages + 2}")  # the disk is full two pages on
    try:
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            store.apply([split("b", pad="x" * 20_000), split("c", pad="y" * 20_000)])
    finally:
        conn.execute("PRAGMA max_page_count=1073741823")
    assert not conn.in_transaction
    assert store.revision() == 1
    assert [o.key.name for o in store.snapshot().objects] == ["a"]
    # The store is still usable, and the revision moves on from where it was.
    assert store.apply([split("d")]).revision == 2


def test_a_failed_check_mid_batch_leaves_the_lock_free_for_other_writers(
    tmp_path: Path,
) -> None:
    a, b = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    try:

        def refuse(*_: Any) -> None:
            raise ValueError("object 2 is invalid")

        with pytest.raises(ValueError):
            a.apply([split("a"), split("b")], check=refuse)
        started = time.monotonic()
        assert b.apply([split("c")]).revision == 1  # not blocked by a's failed write
        assert time.monotonic() - started < 5
        assert [o.key.name for o in a.snapshot().objects] == ["c"]
    finally:
        a.close()
        b.close()


# --- several workers opening one file -------------------------------------------------------


def test_a_worker_migrating_the_store_while_we_open_it_does_not_stop_us(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two gunicorn workers start on a store written before endpoint leases: the other one
    adds the `renewed` column between our look at the schema and our own ALTER (it may, as
    long as we do not hold the write lock from the look to the ALTER)."""
    path = tmp_path / "old.db"
    old_store(path)
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)

        def other_worker(statement: str) -> None:
            if "ADD COLUMN renewed" not in statement:
                return
            other = real_connect(path, timeout=0.1, isolation_level=None)
            try:  # the other worker's migration, if it can get the write lock now
                other.execute("ALTER TABLE endpoints ADD COLUMN renewed REAL NOT NULL DEFAULT 0")
            except sqlite3.OperationalError:
                pass
            finally:
                other.close()

        conn.set_trace_callback(other_worker)
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    store = SQLiteStore(path)  # raised SMI7005 "duplicate column name: renewed"
    monkeypatch.setattr(sqlite3, "connect", real_connect)
    try:
        assert store.revision() == 7
        assert store.expire_endpoints(renewed_before=1.0) == 7
    finally:
        store.close()


def _open_and_write(path: str, start: float, name: str, results: Any) -> None:
    while time.time() < start:
        time.sleep(0.001)
    try:
        s = SQLiteStore(path)
        out = s.apply([split(name)])
        s.close()
        results.put(("ok", out.revision))
    except Exception as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}"))


@pytest.mark.parametrize("kind", ["old", "new"])
def test_workers_opening_one_store_at_once_all_start_and_none_loses_a_write(
    tmp_path: Path, kind: str
) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(3):
        path = tmp_path / f"{round_}.db"
        if kind == "old":
            old_store(path)
        results = ctx.Queue()
        start = time.time() + 0.2
        procs = [
            ctx.Process(target=_open_and_write, args=(str(path), start, f"w{i}", results))
            for i in range(4)
        ]
        for p in procs:
            p.start()
        try:
            got = [results.get(timeout=30) for _ in procs]
        finally:
            for p in procs:
                p.join(timeout=10)
                if p.is_alive():
                    p.kill()
        assert [status for status, _ in got] == ["ok"] * 4, got
        base = 7 if kind == "old" else 0
        assert sorted(rev for _, rev in got) == [base + 1, base + 2, base + 3, base + 4]


# --- damaged files and leftovers ---------------------------------------------------------------


def test_a_file_that_is_not_a_database_is_smi7005(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"not a database at all " * 200)
    with pytest.raises(StoreError) as info:
        SQLiteStore(path)
    assert info.value.diagnostics[0].code == "SMI7005"


def test_a_truncated_database_is_smi7005(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    s = SQLiteStore(path)
    s.apply([split(f"n{i}", pad="x" * 3000) for i in range(40)])
    s._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for leftover in ("t.db-wal", "t.db-shm"):
        (tmp_path / leftover).unlink(missing_ok=True)
    with pytest.raises(StoreError) as info:
        SQLiteStore(path)
    assert info.value.diagnostics[0].code == "SMI7005"


def test_a_wal_left_behind_by_a_killed_server_is_replayed(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "s.db")
    s.apply([split("a")])
    s.apply([split("b")])
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    # A copy taken while the server runs: the database file plus its un-checkpointed WAL.
    shutil.copy(tmp_path / "s.db", crashed / "s.db")
    shutil.copy(tmp_path / "s.db-wal", crashed / "s.db-wal")
    s.close()
    again = SQLiteStore(crashed / "s.db")
    try:
        assert again.revision() == 2
        assert [o.key.name for o in again.snapshot().objects] == ["a", "b"]
    finally:
        again.close()


def test_a_store_in_a_missing_directory_is_created(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "a" / "b" / "store.db")
    try:
        assert s.revision() == 0
    finally:
        s.close()


# --- names, sizes, versions ----------------------------------------------------------------------


def test_unicode_names_and_a_large_object_round_trip(store: SQLiteStore) -> None:
    big = "z" * 2_000_000
    store.apply([split("ünï-😀"), split("big", pad=big)])
    snap = store.snapshot()
    assert [o.key.name for o in snap.objects] == ["big", "ünï-😀"]
    assert snap.objects[0].body["metadata"]["annotations"]["pad"] == big


def test_a_new_version_of_an_object_replaces_the_old_one(store: SQLiteStore) -> None:
    store.apply([split("a", version="v1alpha2")])
    out = store.apply([split("a", version="v1alpha4")])
    assert [a for _, a in out.results] == ["configured"]
    [obj] = store.snapshot().objects
    assert obj.api_version == "split.smi-spec.io/v1alpha4"
    with pytest.raises(StoreError, match="appears twice"):
        store.apply([split("b", version="v1alpha2"), split("b", version="v1alpha4")])


def test_deleting_a_missing_object_changes_nothing(store: SQLiteStore) -> None:
    store.apply([split("a")])
    missing = ObjectKey("split.smi-spec.io", "TrafficSplit", "shop", "nope")
    with pytest.raises(StoreError) as info:
        store.delete([missing])
    assert info.value.diagnostics[0].code == "SMI7004"
    out = store.delete([missing], ignore_missing=True)
    assert out.revision == 1 and not out.changed


def test_waiters_in_every_thread_wake_once_on_a_write(store: SQLiteStore) -> None:
    store.poll_interval = 10.0  # only the in-process wake-up can be in time
    got: list[int] = []
    lock = threading.Lock()

    def wait() -> None:
        rev = store.wait_for_change(0, timeout=20)
        with lock:
            got.append(rev)

    threads = [threading.Thread(target=wait) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    started = time.monotonic()
    store.apply([split("a")])
    for t in threads:
        t.join(timeout=20)
    assert got == [1, 1, 1, 1]
    assert time.monotonic() - started < 5

"""Who else can read the local store: it holds every SMI object, the mesh's authorization
graph, and docs/control-plane.md keeps it from every other local user. sqlite3 created the
database 0644 and its directory 0755 (0777/0666 less the usual umask), so `strings store.db`
showed any local user every object."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from smi.store.base import StoreError
from smi.store.sqlite import SQLiteStore

SPLIT = {
    "apiVersion": "split.smi-spec.io/v1alpha4",
    "kind": "TrafficSplit",
    "metadata": {"name": "web-to-api", "namespace": "shop"},
    "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": 1}]},
}


@pytest.fixture(autouse=True)
def umask022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_store_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "smictl" / "store.db"
    store = SQLiteStore(path)
    try:
        store.apply([SPLIT])  # the write that makes SQLite create -wal and -shm
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.exists() and shm.exists()
        assert [_mode(p) for p in (path, wal, shm)] == [0o600, 0o600, 0o600]
        assert _mode(path.parent) == _mode(path.parent.parent) == 0o700
    finally:
        store.close()


def test_a_second_opener_and_a_reopened_store_work(tmp_path: Path) -> None:
    """Every gunicorn worker opens the file; the one that did not create it must not fail."""
    path = tmp_path / "store.db"
    first, second = SQLiteStore(path), SQLiteStore(path)
    try:
        first.apply([SPLIT])
        assert second.revision() == 1
    finally:
        first.close()
        second.close()
    again = SQLiteStore(path)
    try:
        assert again.revision() == 1 and _mode(path) == 0o600
    finally:
        again.close()


def test_an_existing_directory_and_store_keep_their_modes(tmp_path: Path) -> None:
    """The user's own files: `serve` warns about them, the store does not chmod them."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    path = shared / "store.db"
    SQLiteStore(path).close()
    path.chmod(0o640)
    store = SQLiteStore(path)
    try:
        store.apply([SPLIT])
    finally:
        store.close()
    assert (_mode(shared), _mode(path)) == (0o755, 0o640)


def test_a_file_where_the_directory_should_be_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("x")
    with pytest.raises(StoreError) as info:
        SQLiteStore(tmp_path / "state" / "store.db")
    (d,) = info.value.diagnostics
    assert d.code == "SMI7005" and "cannot open the store" in d.message

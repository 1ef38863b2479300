"""The local store: one SQLite database file in WAL mode, shared by every process that opens it.

Why SQLite: `smictl serve` runs several gunicorn workers; the database file is what they share,
and its transactions give the two guarantees the control plane promises:
- an apply of several documents is all-or-nothing (one transaction), even when the process is
  killed in the middle (the WAL either holds the commit record or it does not);
- the revision increases strictly: every write takes the write lock first (`BEGIN IMMEDIATE`),
  reads the current revision, and commits revision + 1 with its rows.

Endpoints registered by proxies are leases: `register_endpoint` of an unchanged record only
stamps `renewed` (no new revision), and `expire_endpoints` drops the lapsed ones in one write,
never nested in another write of the same connection, and with `wait=False` only if the write
lock is free at once (the control plane calls it from its event loop).

Reads use one connection per thread (sqlite3 connections must not be shared across threads
without a lock). Waiting for a change polls the one-row `meta` table every `poll_interval`
seconds (a few microseconds per look), and is woken at once by writes of the same process.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from smi.errors import Diagnostic
from smi.store.base import (
    Action,
    Change,
    Check,
    EndpointRecord,
    ObjectKey,
    Outcome,
    Snapshot,
    Store,
    StoredObject,
    StoreError,
    canonical_json,
    store_error,
)

# Registered endpoints per identity (replicas of one workload each register their own).
MAX_ENDPOINTS_PER_IDENTITY = 256
# How long a write waits for another process's write lock before it fails ("database is locked").
_BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
CREATE TABLE IF NOT EXISTS objects (
    api_group TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    body TEXT NOT NULL, revision INTEGER NOT NULL,
    PRIMARY KEY (api_group, kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS endpoints (
    address TEXT NOT NULL, port INTEGER NOT NULL, identity TEXT NOT NULL,
    services TEXT NOT NULL, revision INTEGER NOT NULL, renewed REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (address, port)
);
"""


def make_private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents with mode 0700, as the XDG base directory
    spec asks of state directories: the store holds every SMI object (the mesh's authorization
    graph), and the certs directory the mesh CA. A directory that already exists keeps its
    mode: it is the user's, and may be shared on purpose."""
    if directory.exists() and not directory.is_dir():  # as mkdir(exist_ok=True) reports it
        raise FileExistsError(errno.EEXIST, "not a directory", str(directory))
    missing = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            if not path.is_dir():  # a file, or a symlink to nothing: as mkdir(exist_ok) reports
                raise
            continue  # another process made it meanwhile: its mode is its business
        path.chmod(0o700)  # the umask may have taken the owner's bits too


def _create_private(path: Path) -> None:
    """Create the database file with mode 0600 if it is missing. sqlite3 would create it 0644
    (0666 less the umask), readable by every local user, and SQLite gives the `-wal` and `-shm`
    files the database file's mode, so those follow. An existing file keeps its mode (`serve`
    warns when other users can read it)."""
    with suppress(FileExistsError):  # also when another worker made it first: left alone
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class SQLiteStore(Store):
    """The writable local store (see the module docstring)."""

    writable = True

    def __init__(self, path: str | Path, *, poll_interval: float = 0.05) -> None:
        self.path = Path(path)
        self.poll_interval = poll_interval
        # Per-connection state: one sqlite3 connection per thread, all closed by close().
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        # Writes of this process wake waiters at once; other processes are seen by polling.
        self._changed = threading.Condition()
        try:
            make_private_dirs(self.path.parent)
            _create_private(self.path)
            self._prepare(self._conn())
        except (OSError, sqlite3.Error) as exc:
            raise store_error("SMI7005", f"cannot open the store {self.path}: {exc}") from exc

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """WAL mode, the schema, and migrations, safe when every gunicorn worker opens the file
        at the same moment: the schema is checked and migrated under the write lock (two workers
        must not both see an old schema and both migrate it), and switching a new file to WAL,
        which SQLite refuses at once rather than wait while another process writes, is retried."""
        deadline = time.monotonic() + 30.0
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                with self._write(conn):
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    columns = {row[1] for row in conn.execute("PRAGMA table_info(endpoints)")}
                    if "renewed" not in columns:  # a store written before endpoint leases
                        conn.execute(
                            "ALTER TABLE endpoints ADD COLUMN renewed REAL NOT NULL DEFAULT 0"
                        )
                return
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    # --- connections ------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN ourselves, so a write holds the lock from
            # its first read (BEGIN IMMEDIATE) and no implicit transaction surprises us.
            conn = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _write(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # SQLite rolls some failures back itself (SQLITE_FULL, SQLITE_IOERR): a ROLLBACK
            # then fails and would hide the error that matters ("database or disk is full").
            # A COMMIT that failed with the transaction still open must not keep the lock.
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        with self._changed:
            self._changed.notify_all()

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    # --- reads ------------------------------------------------------------------------------

    def revision(self) -> int:
        return self._revision(self._conn())

    @staticmethod
    def _revision(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return int(row[0])

    def snapshot(self) -> Snapshot:
        conn = self._conn()
        if conn.in_transaction:  # called from inside a write's check: read its view
            return self._snapshot(conn)
        # One read transaction, so the objects, endpoints and revision agree.
        conn.execute("BEGIN")
        try:
            return self._snapshot(conn)
        finally:
            conn.execute("COMMIT")

    def _snapshot(self, conn: sqlite3.Connection) -> Snapshot:
        rows = conn.execute(
            "SELECT api_group, kind, namespace, name, body, revision FROM objects "
            "ORDER BY api_group, kind, namespace, name"
        ).fetchall()
        objects = tuple(
            StoredObject(key=ObjectKey(g, k, ns, n), body=json.loads(body), revision=rev)
            for g, k, ns, n, body, rev in rows
        )
        eps = conn.execute(
            "SELECT address, port, identity, services FROM endpoints ORDER BY address, port"
        ).fetchall()
        endpoints = tuple(
            EndpointRecord(address=a, port=p, identity=i, services=tuple(json.loads(s)))
            for a, p, i, s in eps
        )
        return Snapshot(revision=self._revision(conn), objects=objects, endpoints=endpoints)

    def wait_for_change(self, revision: int, *, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        current = self.revision()
        while current <= revision:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with self._changed:
                self._changed.wait(min(self.poll_interval, left))
            current = self.revision()
        return current

    # --- writes -----------------------------------------------------------------------------

    def apply(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        check: Check | None = None,
        dry_run: bool = False,
    ) -> Outcome:
        keyed = _distinct([(ObjectKey.of(doc), doc) for doc in docs])
        conn = self._conn()
        with self._write(conn):
            snap = self._snapshot(conn)
            index = {o.key: o for o in snap.objects}
            changes = [
                _apply_change(index=i, key=key, doc=doc, old=index.get(key))
                for i, key, doc in keyed
            ]
            if check is not None:
                check(snap, changes)
            return self._commit(conn, snap=snap, changes=changes, dry_run=dry_run)

    def delete(
        self,
        keys: Sequence[ObjectKey],
        *,
        check: Check | None = None,
        dry_run: bool = False,
        ignore_missing: bool = False,
    ) -> Outcome:
        _refuse_duplicates(keys, what="delete")
        conn = self._conn()
        with self._write(conn):
            snap = self._snapshot(conn)
            index = {o.key: o for o in snap.objects}
            changes: list[Change] = []
            missing: list[Diagnostic] = []
            for i, key in enumerate(keys):
                old = index.get(key)
                if old is None:
                    if not ignore_missing:
                        missing.append(Diagnostic("SMI7004", f"{key} not found"))
                    continue
                changes.append(Change("DELETE", key, None, old, index=i))
            if missing:  # every one, in the order given: not just the first
                raise StoreError(missing)
            if check is not None:
                check(snap, changes)
            return self._commit(conn, snap=snap, changes=changes, dry_run=dry_run)

    def _commit(
        self,
        conn: sqlite3.Connection,
        *,
        snap: Snapshot,
        changes: Sequence[Change],
        dry_run: bool,
    ) -> Outcome:
        results = tuple((c.key, _action(c)) for c in changes)
        real = [c for c in changes if _action(c) != "unchanged"]
        if dry_run or not real:
            return Outcome(revision=snap.revision, results=results, dry_run=dry_run)
        revision = snap.revision + 1
        for c in real:
            k = c.key
            if c.new is None:
                conn.execute(
                    "DELETE FROM objects WHERE api_group=? AND kind=? AND namespace=? AND name=?",
                    (k.group, k.kind, k.namespace, k.name),
                )
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?)",
                    (k.group, k.kind, k.namespace, k.name, canonical_json(c.new), revision),
                )
        self._bump(conn, revision)
        return Outcome(revision=revision, results=results, changed=True)

    @staticmethod
    def _bump(conn: sqlite3.Connection, revision: int) -> None:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'revision'", (revision,))

    def register_endpoint(self, record: EndpointRecord, *, now: float | None = None) -> int:
        renewed = time.time() if now is None else now
        conn = self._conn()
        with self._write(conn):
            current = self._revision(conn)
            row = conn.execute(
                "SELECT identity, services FROM endpoints WHERE address=? AND port=?",
                (record.address, record.port),
            ).fetchone()
            services = json.dumps(sorted(set(record.services)))
            if row is not None and row[0] != record.identity:
                # Replacing it would drop another workload's endpoint (any authenticated
                # workload could take any address); a pod that got a dead pod's IP waits for
                # that lease to end (its proxy retries).
                raise store_error(
                    "SMI7008",
                    f"endpoint {record.address}:{record.port} is registered by {row[0]} "
                    "until its lease ends",
                )
            if row is None:
                self._check_room(conn, record.identity)
            if row is not None and (row[0], row[1]) == (record.identity, services):
                conn.execute(
                    "UPDATE endpoints SET renewed=? WHERE address=? AND port=?",
                    (renewed, record.address, record.port),
                )
                return current  # a renewal: the policy does not change
            conn.execute(
                "INSERT OR REPLACE INTO endpoints VALUES (?, ?, ?, ?, ?, ?)",
                (record.address, record.port, record.identity, services, current + 1, renewed),
            )
            self._bump(conn, current + 1)
            return current + 1

    @staticmethod
    def _check_room(conn: sqlite3.Connection, identity: str) -> None:
        """Every registration goes into every proxy's MeshPolicy: one workload must not grow
        it without bound."""
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM endpoints WHERE identity=?", (identity,)
        ).fetchone()
        if count >= MAX_ENDPOINTS_PER_IDENTITY:
            raise store_error(
                "SMI7008",
                f"{identity} already has {count} endpoints registered, the most one identity "
                "may have; deregister one first",
            )

    def expire_endpoints(self, *, renewed_before: float, wait: bool = True) -> int | None:
        conn = self._conn()
        if conn.in_transaction:
            # Called from inside a write's check (admission compiles a view): SQLite cannot
            # nest the write, and failing here would fail that apply. The write in progress
            # holds the lock; the expiry is the next check's.
            return None
        stale = conn.execute(
            "SELECT 1 FROM endpoints WHERE renewed < ? LIMIT 1", (renewed_before,)
        ).fetchone()
        if stale is None:  # the common case stays a read
            return self._revision(conn)
        if wait:
            return self._expire(conn, renewed_before)
        # The caller may be an event loop: take the write lock only if it is free now, rather
        # than wait up to the busy timeout behind another worker's write.
        conn.execute("PRAGMA busy_timeout=0")
        try:
            return self._expire(conn, renewed_before)
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
            return None
        finally:
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")

    def _expire(self, conn: sqlite3.Connection, renewed_before: float) -> int:
        with self._write(conn):
            current = self._revision(conn)
            gone = conn.execute("DELETE FROM endpoints WHERE renewed < ?", (renewed_before,))
            if gone.rowcount == 0:  # another process expired them first
                return current
            self._bump(conn, current + 1)
            return current + 1

    def deregister_endpoint(self, *, address: str, port: int, identity: str) -> int:
        conn = self._conn()
        with self._write(conn):
            current = self._revision(conn)
            row = conn.execute(
                "SELECT identity FROM endpoints WHERE address=? AND port=?", (address, port)
            ).fetchone()
            if row is None:
                return current
            if row[0] != identity:
                raise store_error(
                    "SMI7008",
                    f"endpoint {address}:{port} belongs to {row[0]}, not to {identity}",
                )
            conn.execute("DELETE FROM endpoints WHERE address=? AND port=?", (address, port))
            self._bump(conn, current + 1)
            return current + 1


def _distinct(
    keyed: Sequence[tuple[ObjectKey, Mapping[str, Any]]],
) -> list[tuple[int, ObjectKey, Mapping[str, Any]]]:
    """The documents of one apply, each with its index in the apply, a copy identical to an
    earlier one left out: `smictl validate` calls such copies one object, and refusing them
    failed at deploy a set that passed CI. SMI2007 when two copies differ: which one wins
    would be left to chance."""
    first: dict[ObjectKey, str] = {}
    out: list[tuple[int, ObjectKey, Mapping[str, Any]]] = []
    for i, (key, doc) in enumerate(keyed):
        body = canonical_json(doc)
        seen = first.get(key)
        if seen is None:
            first[key] = body
            out.append((i, key, doc))
        elif seen != body:
            raise store_error(
                "SMI2007",
                f"{key} appears twice in one apply, with different content",
                path="metadata.name",
            )
    return out


def _refuse_duplicates(keys: Sequence[ObjectKey], *, what: str) -> None:
    """SMI2007 when a key is given twice: a delete would report the object deleted twice."""
    seen: set[ObjectKey] = set()
    for key in keys:
        if key in seen:
            raise store_error("SMI2007", f"{key} appears twice in one {what}", path="metadata.name")
        seen.add(key)


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether `exc` is SQLite's "database is locked" (SQLITE_BUSY, or SQLITE_LOCKED)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc)


def _apply_change(
    *, index: int, key: ObjectKey, doc: Mapping[str, Any], old: StoredObject | None
) -> Change:
    return Change("UPDATE" if old else "CREATE", key, doc, old, index=index)


def _action(change: Change) -> Action:
    if change.new is None:
        return "deleted"
    if change.old is None:
        return "created"
    if change.unchanged:
        return "unchanged"
    return "configured"

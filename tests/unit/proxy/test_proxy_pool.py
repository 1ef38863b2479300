"""The upstream connection pool: requests that find no idle connection wait for a given-back
one or for one of a bounded number of connections being opened, never for longer than the
connect timeout."""

from __future__ import annotations

import asyncio
import sys

import pytest
from proxy_fakes import FakeTransport

from proxy.lists import one_slot
from proxy.state import ServerState
from proxy.upstream import (
    ConnectFailed,
    ConnectionPool,
    ConnectTimeout,
    Target,
    UpstreamConnection,
)

APP = Target("app.local", 8080)
OTHER = Target("other.local", 8080)


class Dialer:
    """A connector whose connections open when the test says so (or fail, or never open)."""

    def __init__(self) -> None:
        self.pending: list[asyncio.Future[None]] = []
        self.made: list[UpstreamConnection] = []
        self.refuse = False

    async def __call__(self, pool: ConnectionPool, target: Target) -> UpstreamConnection:
        if self.refuse:
            raise ConnectionRefusedError(111, "Connection refused")
        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(opened)
        await opened
        conn = UpstreamConnection(pool, target)
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        self.made.append(conn)
        return conn

    def open_all(self) -> None:
        for f in self.pending:
            if not f.done():
                f.set_result(None)

    def open_one(self) -> None:
        next(f for f in self.pending if not f.done()).set_result(None)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def in_use(pool: ConnectionPool, target: Target = APP) -> UpstreamConnection:
    """A connection that some request holds (it will give it back)."""
    conn = UpstreamConnection(pool, target)
    conn.connection_made(FakeTransport())  # type: ignore[arg-type]
    return conn


async def test_a_burst_of_requests_opens_at_most_max_dials_connections() -> None:
    dialer = Dialer()
    pool = ConnectionPool(connector=dialer, max_dials=3)
    gets = [asyncio.ensure_future(pool.get(APP)) for _ in range(20)]
    await settle()
    assert len(dialer.pending) == 3
    assert pool.waiting_count() == 20
    # Each opened connection serves the oldest waiter, and another is dialled while more
    # wait than are being opened for: every request ends up with a connection of its own.
    for _ in range(20):
        dialer.open_one()
        await settle()
        assert len([f for f in dialer.pending if not f.done()]) <= 3
    conns = await asyncio.gather(*gets)
    assert len({id(c) for c in conns}) == 20 and pool.opened == 20
    assert pool.waiting_count() == 0 and pool.idle_count() == 0
    assert conns[0] is dialer.made[0]  # oldest first


async def test_a_connection_given_back_goes_to_the_oldest_waiter_before_any_dial_ends() -> None:
    dialer = Dialer()
    pool = ConnectionPool(connector=dialer)
    busy = in_use(pool)
    first, second = asyncio.ensure_future(pool.get(APP)), asyncio.ensure_future(pool.get(APP))
    await settle()
    assert len(dialer.pending) == 2
    pool.release(busy)
    await settle()
    assert first.done() and first.result() is busy and not second.done()
    dialer.open_all()
    await settle()
    assert second.result() is dialer.made[0]
    assert pool.idle_count() == 1  # the second dial's connection: nobody waits for it now
    assert pool.acquire(APP) is dialer.made[1]


async def test_no_dial_while_enough_are_being_opened_for_the_waiting() -> None:
    dialer = Dialer()
    pool = ConnectionPool(connector=dialer)
    busy = in_use(pool)
    first = asyncio.ensure_future(pool.get(APP))
    await settle()
    pool.release(busy)  # serves `first`; the dial it started is still under way
    await settle()
    second = asyncio.ensure_future(pool.get(APP))
    await settle()
    assert len(dialer.pending) == 1, "the dial under way is enough for one waiter"
    dialer.open_all()
    await settle()
    assert first.result() is busy and second.result() is dialer.made[0]


async def test_targets_do_not_share_waiters_or_dials() -> None:
    dialer = Dialer()
    pool = ConnectionPool(connector=dialer, max_dials=1)
    a = asyncio.ensure_future(pool.get(APP))
    b = asyncio.ensure_future(pool.get(OTHER))
    await settle()
    assert len(dialer.pending) == 2
    pool.release(in_use(pool, OTHER))
    await settle()
    assert b.done() and not a.done()
    dialer.open_all()
    await settle()
    assert a.result().target is APP


async def test_every_waiter_fails_with_the_connect_error_when_the_target_refuses() -> None:
    dialer = Dialer()
    dialer.refuse = True
    pool = ConnectionPool(connector=dialer, max_dials=2)
    gets = [asyncio.ensure_future(pool.get(APP)) for _ in range(7)]
    results = await asyncio.wait_for(asyncio.gather(*gets, return_exceptions=True), 2)
    assert all(isinstance(r, ConnectFailed) for r in results)
    assert "Connection refused" in str(results[0])
    assert pool.waiting_count() == 0 and pool.idle_count() == 0


async def test_a_waiter_gives_up_after_the_connect_timeout_when_nothing_opens() -> None:
    dialer = Dialer()  # never opens
    pool = ConnectionPool(connector=dialer, connect_timeout=0.05, max_dials=2)
    gets = [asyncio.ensure_future(pool.get(APP)) for _ in range(5)]
    results = await asyncio.wait_for(asyncio.gather(*gets, return_exceptions=True), 2)
    assert all(isinstance(r, ConnectTimeout) for r in results)
    assert len(dialer.pending) == 2
    assert pool.waiting_count() == 0


async def test_a_cancelled_waiter_leaves_the_queue_and_its_connection_goes_idle() -> None:
    dialer = Dialer()
    pool = ConnectionPool(connector=dialer)
    get = asyncio.ensure_future(pool.get(APP))
    await settle()
    get.cancel()
    await settle()
    assert pool.waiting_count() == 0
    dialer.open_all()
    await settle()
    assert pool.idle_count() == 1 and pool.acquire(APP) is dialer.made[0]


async def test_a_waiter_cancelled_after_being_handed_a_connection_passes_it_on() -> None:
    dialer = Dialer()
    pool = ConnectionPool(connector=dialer)
    busy = in_use(pool)
    first, second = asyncio.ensure_future(pool.get(APP)), asyncio.ensure_future(pool.get(APP))
    await settle()
    pool.release(busy)  # to `first`, whose task has not run since
    first.cancel()
    await settle()
    assert first.cancelled() and second.result() is busy


async def test_a_connection_that_closed_while_handed_over_is_not_used() -> None:
    dialer = Dialer()
    pool = ConnectionPool(connector=dialer)
    busy = in_use(pool)
    get = asyncio.ensure_future(pool.get(APP))
    await settle()
    pool.release(busy)
    busy.close()  # before the waiting request runs
    dialer.open_all()
    await settle()
    assert get.result() is dialer.made[0]


async def test_close_all_fails_the_waiting_and_closes_what_opens_later() -> None:
    dialer = Dialer()
    pool = ConnectionPool(connector=dialer)
    get = asyncio.ensure_future(pool.get(APP))
    await settle()
    pool.close_all()
    with pytest.raises(ConnectFailed, match="shutting down"):
        await get
    dialer.open_all()
    await settle()
    assert dialer.made[0].closed and pool.idle_count() == 0
    with pytest.raises(ConnectFailed):
        await pool.get(APP)


async def test_connections_being_opened_are_tasks_of_the_proxy_state_and_stop_with_it() -> None:
    dialer = Dialer()  # never opens
    state = ServerState()
    pool = ConnectionPool(connector=dialer, state=state)
    get = asyncio.ensure_future(pool.get(APP))
    await settle()
    assert len(state.tasks) == 1
    await state.stop()
    assert not state.tasks and dialer.pending[0].cancelled()
    pool.close_all()
    with pytest.raises(ConnectFailed, match="shutting down"):
        await get


async def test_a_plain_connection_is_never_handed_to_an_mtls_target_at_the_same_address() -> None:
    # An endpoint naming the app's own address with no identity must not get the pooled plain
    # connection to the app: the request would skip the peer proxy and its authorization.
    class _TLS:
        client_context = None

    mtls = Target("app.local", 8080, tls=_TLS(), identity="")  # type: ignore[arg-type]
    assert mtls.key != APP.key
    pool = ConnectionPool(connector=Dialer(), max_dials=1)
    pool.release(in_use(pool, APP))
    assert pool.acquire(mtls) is None
    assert pool.acquire(APP) is not None


async def test_the_sweep_closes_the_stale_idle_and_leaves_a_fresh_list_alone() -> None:
    """Past the idle timeout a connection is closed and the rest stay idle; a target whose
    idle all stay keeps its list (the one slot it was made with, proxy.lists: the ticker
    sweeps four times a second)."""
    pool = ConnectionPool(connector=Dialer(), idle_timeout=10.0)
    pool.sweep(100.0)
    old, fresh, only = in_use(pool), in_use(pool), in_use(pool, OTHER)
    pool.release(old)
    pool.sweep(105.0)
    pool.release(fresh)
    pool.release(only)
    alone = pool._idle[OTHER.key]
    assert sys.getsizeof(alone) == sys.getsizeof(one_slot())
    pool.sweep(112.0)  # `old` is 12 s idle, `fresh` 7 s
    assert old.closed and not fresh.closed and not only.closed
    assert pool._idle[APP.key] == [fresh]
    assert sys.getsizeof(pool._idle[APP.key]) == sys.getsizeof(one_slot())
    assert pool._idle[OTHER.key] is alone
    pool.sweep(120.0)
    assert fresh.closed and only.closed and pool.idle_count() == 0

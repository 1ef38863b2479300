"""What every listener shares: open connections, background tasks, timeouts and draining.

Timeouts are checked by one ticker per process instead of one timer per request: the request
path only stores a deadline (a float) on its connection, and the ticker closes whatever is past
due. Draining (SIGTERM) stops listeners, closes idle connections at once, lets in-flight
requests finish, and waits for the connections to go away, up to a timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from smi.compiler.ir import Endpoint
    from smi.compiler.ir.index import PolicyIndex


class Tracked(Protocol):
    """A connection the state can time out and drain."""

    deadline: float

    def on_deadline(self, now: float) -> None: ...
    def shutdown(self) -> None: ...


class PolicySlot:
    """The policy in use as the request path reads it: the index and the endpoints file's
    services, each replaced whole (never changed) when another is installed. `PolicyHolder`
    (proxy.policy, not compiled) writes them; the routers read them here, a compiled class,
    where reading an attribute of the holder is a lookup by name on every request."""

    def __init__(self) -> None:
        self.index: PolicyIndex | None = None
        self.endpoints: dict[str, tuple[Endpoint, ...]] = {}


class ServerState:
    def __init__(self, *, tick: float = 0.25) -> None:
        self.connections: set[Tracked] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.draining = False
        self.tick = tick
        # A coarse clock for deadlines (updated every tick): the request path reads an
        # attribute instead of calling the clock several times per request.
        self.now = time.monotonic()
        self.on_tick: list[Callable[[float], None]] = []
        self._ticker: asyncio.Task[None] | None = None
        self._all_closed: asyncio.Event | None = None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a background task, keeping a reference so it is neither lost nor left behind."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._run_ticker())

    async def _run_ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self.check(time.monotonic())

    def check(self, now: float) -> None:
        self.now = max(self.now, now)
        for conn in [c for c in self.connections if c.deadline <= now]:
            conn.on_deadline(now)
        for hook in self.on_tick:
            hook(now)

    def opened(self, conn: Tracked) -> None:
        self.connections.add(conn)

    def closed(self, conn: Tracked) -> None:
        self.connections.discard(conn)
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    async def drain(self, grace: float) -> bool:
        """Close idle connections now and wait for the rest; True when all finished in time."""
        self.draining = True
        self._all_closed = asyncio.Event()
        for conn in list(self.connections):
            conn.shutdown()
        if not self.connections:
            return True
        try:
            async with asyncio.timeout(grace):
                await self._all_closed.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(self._ticker or asyncio.sleep(0), *self.tasks, return_exceptions=True)

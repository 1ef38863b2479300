"""`LoopWorker`: a gunicorn worker that serves the WSGI app from one uvloop thread.

gunicorn still does what it is good at — the master, forking, heartbeats, graceful restarts,
max_requests, TLS configuration through the `ssl_context` hook — and this worker replaces
gthread's thread-per-request (why: `webhook.wsgiloop`). Fast requests (admission reviews,
conversion, health, metrics, decisions) run on the loop; those the app marks as possibly
blocking run in a pool of `threads` threads; long polls that would wait are parked on the loop
(`webhook.wsgiloop.Parking`: a connection and a timer each, one watcher thread per worker), at
most `max_parked()` of them — gunicorn's `worker_connections`, and never more than half the
process's file descriptor limit — past which a poll waits in the pool as before.

Signals follow gunicorn's contract: SIGTERM drains (no new connections; in-flight requests end
within `graceful_timeout`; parked long polls are answered at once, 304 or the new policy, with
`Connection: close`), SIGINT/SIGQUIT stop at once, SIGUSR1 reopens log files. A `max_requests`
restart drains the same way.

A renewed serving certificate is used from the next handshake on: the server's context asks the
`ssl_context` hook (`webhook.tls.ServingContext`, which re-reads changed files) for the current
context in its SNI callback, so no connection is refused while the files are replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import signal
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gunicorn.workers import base

from webhook.wsgiloop import HttpProtocol, Limits, Server


class LoopWorker(base.Worker):  # type: ignore[misc]
    def init_process(self) -> None:
        import uvloop

        self.loop = uvloop.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.quick_exit = False
        self.stopping = asyncio.Event()  # set with alive = False: the heartbeat wait ends at once
        super().init_process()

    def init_signals(self) -> None:
        for s in self.SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        self.loop.add_signal_handler(signal.SIGTERM, self._graceful)
        self.loop.add_signal_handler(signal.SIGQUIT, self._quick)
        self.loop.add_signal_handler(signal.SIGINT, self._quick)
        self.loop.add_signal_handler(signal.SIGUSR1, self.log.reopen_files)
        self.loop.add_signal_handler(signal.SIGABRT, self._abort)
        signal.signal(signal.SIGWINCH, signal.SIG_IGN)

    def _stop(self) -> None:
        self.alive = False
        self.stopping.set()

    def _graceful(self) -> None:
        self._stop()

    def _quick(self) -> None:
        self.quick_exit = True
        self._stop()
        self.cfg.worker_int(self)

    def _abort(self) -> None:
        self.alive = False
        self.cfg.worker_abort(self)
        os._exit(1)

    def run(self) -> None:
        # The app, its compiled policies and the imports are built once and live as long as
        # the worker: frozen, the collector stops re-scanning them. The first full collection
        # after start-up otherwise paused a worker for ~30 ms (a review's p99 is ~3 ms).
        gc.collect()
        gc.freeze()
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    def _counted(self) -> None:
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self._stop()

    async def _serve(self) -> None:
        executor = ThreadPoolExecutor(
            max_workers=max(1, int(self.cfg.threads)), thread_name_prefix="smictl-pool"
        )
        context = self._ssl_context()
        default = Limits()
        # gunicorn's limits (0 = unlimited, which we do not offer: the defaults then apply).
        line, field = int(self.cfg.limit_request_line), int(self.cfg.limit_request_field_size)
        limits = Limits(
            max_header_count=int(self.cfg.limit_request_fields) or default.max_header_count,
            max_header_bytes=4 * max(line, field) or default.max_header_bytes,
            keepalive_seconds=float(self.cfg.keepalive) or default.keepalive_seconds,
        )
        server = Server(
            app=self.wsgi,
            executor=executor,
            scheme="https" if context is not None else "http",
            limits=limits,
            on_request=self._counted,
            max_parked=self.max_parked(),
        )
        listeners = [
            await self.loop.create_server(
                lambda: HttpProtocol(server, self.loop),
                sock=listener.sock,
                ssl=context,
                backlog=int(self.cfg.backlog),
            )
            for listener in self.sockets
        ]
        heartbeat = max(0.5, min(5.0, self.timeout / 4)) if self.timeout else 1.0
        while self.alive:
            self.notify()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), heartbeat)
        for listening in listeners:
            listening.close()
        server.shutdown()
        if not self.quick_exit:
            deadline = time.monotonic() + float(self.cfg.graceful_timeout)
            while server.connections and time.monotonic() < deadline:
                self.notify()
                await asyncio.sleep(0.05)
        for conn in list(server.connections):
            conn.close_when_idle()
            if conn.transport is not None:
                conn.transport.abort()
        executor.shutdown(wait=False, cancel_futures=True)

    def max_parked(self) -> int:
        """How many long polls one worker parks: gunicorn's `worker_connections`, bounded by
        half the file descriptor limit (each is a connection; the rest is for everything else)."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = max(1, int(self.cfg.worker_connections))
        if soft == resource.RLIM_INFINITY:
            return wanted
        return max(1, min(wanted, soft // 2))

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.cfg.is_ssl:
            return None
        from gunicorn import sock

        context: ssl.SSLContext = sock.ssl_context(self.cfg)

        def current(ssl_object: Any, server_name: str | None, _ctx: ssl.SSLContext) -> None:
            fresh = sock.ssl_context(self.cfg)
            if fresh is not context:
                ssl_object.context = fresh

        context.sni_callback = current
        return context

"""Long polls parked on the worker's event loop (`webhook.wsgiloop.Parking`) under real gunicorn
and TLS: hundreds of waiting proxies on ONE worker with 4 threads, none answered early, reviews
served meanwhile, every poll woken by an apply, and no thread per poll."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from control_plane_harness import Server, admission_review, split

pytestmark = pytest.mark.integration

POLLS = 300
CONNECT_AT_ONCE = 50  # TLS handshakes in flight (the worker does them on its one loop thread)
WAKE_WITHIN = 5.0  # seconds from the end of the apply to the last poll's answer

TARGET = """\
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: postgres, namespace: shop}
spec:
  matches:
    ports: [5432]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api-to-db, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: db, namespace: shop}
  rules:
  - {kind: TCPRoute, name: postgres}
  sources:
  - {kind: ServiceAccount, name: api, namespace: shop}
"""


def worker_pid(server: Server) -> int:
    """The one gunicorn worker: the master's only child."""
    assert server.proc is not None
    master = server.proc.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def threads_of(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


class Poll:
    """One proxy's long poll on its own TLS connection, read with asyncio."""

    def __init__(self, authorization: str) -> None:
        self.authorization = authorization  # a proxy's: the policy is served to workloads
        self.status = 0
        self.headers: dict[str, str] = {}
        self.answered_at = 0.0

    async def run(
        self,
        *,
        host: str,
        port: int,
        context: ssl.SSLContext,
        etag: str,
        gate: asyncio.Semaphore,
        sent: Callable[[], None],
    ) -> None:
        async with gate:
            reader, writer = await asyncio.open_connection(host, port, ssl=context)
        try:
            writer.write(
                f"GET /mesh/v1/policy?timeout=30 HTTP/1.1\r\nHost: {host}\r\n"
                f"If-None-Match: {etag}\r\nAuthorization: {self.authorization}\r\n\r\n".encode()
            )
            await writer.drain()
            sent()
            head = await reader.readuntil(b"\r\n\r\n")
            self.answered_at = time.monotonic()
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name:
                    self.headers[name.strip().lower()] = value.strip()
            await reader.readexactly(int(self.headers.get("content-length", "0")))
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 5)


def test_hundreds_of_long_polls_park_on_one_worker_and_all_wake(
    fresh_server: Server, tmp_path: Path
) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    polls = min(POLLS, soft // 2 - 64)  # each side holds one descriptor per poll
    if polls < 50:
        pytest.skip(f"ulimit -n is {soft}: too low for this test")
    server = fresh_server.start(workers=1, extra=("--threads", "4"))
    s = server.workload_session()
    etag = s.get(f"{server.url}/mesh/v1/policy", timeout=10).headers["ETag"]
    worker = worker_pid(server)
    threads_before = threads_of(worker)
    manifest = tmp_path / "target.yaml"
    manifest.write_text(TARGET)
    url = urlsplit(server.url)
    host, port = url.hostname or "127.0.0.1", int(url.port or 443)
    context = ssl.create_default_context(cafile=str(server.ca))

    async def scenario() -> tuple[list[Poll], float, dict[str, float]]:
        gate = asyncio.Semaphore(CONNECT_AT_ONCE)
        all_sent = asyncio.Event()
        count = [0]

        def sent() -> None:
            count[0] += 1
            if count[0] == polls:
                all_sent.set()

        clients = [Poll(str(s.headers["Authorization"])) for _ in range(polls)]
        tasks = [
            asyncio.create_task(
                c.run(host=host, port=port, context=context, etag=etag, gate=gate, sent=sent)
            )
            for c in clients
        ]
        # Every poll connected and sent, then a moment to be answered if it were going to be
        # answered early.
        await asyncio.wait_for(all_sent.wait(), 60)
        await asyncio.sleep(1.0)
        early = [c.status for c in clients if c.status]
        assert early == [], f"{len(early)} polls answered without waiting: {early[:5]}"
        assert not any(t.done() for t in tasks)
        # Meanwhile the worker answers reviews and health checks at once, and holds no thread
        # per poll (at most the watcher thread is new).
        timings: dict[str, float] = {}
        review = admission_review(split("w", "ns"), uid="u-parked")
        started = time.monotonic()
        r = await asyncio.to_thread(s.post, f"{server.url}/validate", json=review, timeout=10)
        timings["validate"] = time.monotonic() - started
        assert r.status_code == 200 and r.json()["response"]["allowed"] is True
        started = time.monotonic()
        r = await asyncio.to_thread(s.get, f"{server.url}/healthz", timeout=10)
        timings["healthz"] = time.monotonic() - started
        assert r.status_code == 200
        timings["threads_parked"] = threads_of(worker)
        applied = await asyncio.to_thread(server.smictl, "apply", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr
        applied_at = time.monotonic()
        done, pending = await asyncio.wait(tasks, timeout=WAKE_WITHIN + 5)
        for t in pending:
            t.cancel()
        for t in done:
            t.result()  # a poll that failed (connection reset) fails the test with its error
        assert not pending, f"{len(pending)} polls not answered"
        return clients, applied_at, timings

    clients, applied_at, timings = asyncio.run(asyncio.wait_for(scenario(), timeout=120))

    assert timings["validate"] < 2.0 and timings["healthz"] < 2.0, timings
    assert timings["threads_parked"] <= threads_before + 1, (threads_before, timings)
    new = s.get(f"{server.url}/mesh/v1/policy", timeout=10)
    assert new.headers["ETag"] != etag and "shop/TrafficTarget/api-to-db" in new.text
    assert {c.status for c in clients} == {200}
    assert {c.headers["etag"] for c in clients} == {new.headers["ETag"]}
    assert all("retry-after" not in c.headers for c in clients)
    last = max(c.answered_at for c in clients) - applied_at
    assert last < WAKE_WITHIN, f"the last poll was answered {last:.2f} s after the apply"
    # The apply ran in the pool; the polls never did: at most the pool's 4 threads are new.
    assert threads_of(worker) <= threads_before + 1 + 4

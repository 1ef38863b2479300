"""A request the worker runs on its event loop because its caller was known without a call is
answered as that caller: the route does not authenticate it again, where a cached review that
ended meanwhile would mean a TokenReview on the loop, stalling every connection of the worker."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from local_admin import ADMIN_TOKEN, with_admin_token
from mesh_reader import reader

from smi.identity import Identity
from smi.policy.policyset import PolicySet
from webhook import create_app
from webhook.auth import AuthError, TokenReviewer
from webhook.mesh import LOCAL_ADMIN, PARKED_READER
from webhook.settings import Settings
from webhook.wsgiloop import INLINE_ATTR, HttpProtocol, Limits, Server

SA_WEB = {
    "authenticated": True,
    "audiences": ["smictl"],
    "user": {"username": "system:serviceaccount:shop:web"},
}


class FakeTransport:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.9", 40000), "sockname": ("127.0.0.1", 8443)}.get(
            name, default
        )


class Worker:
    """The app behind `webhook.worker.LoopWorker`'s protocol: this thread is its event loop."""

    def __init__(self, app: Flask) -> None:
        self.loop = asyncio.new_event_loop()
        self.executor = ThreadPoolExecutor(max_workers=2)
        self.server = Server(app=app, executor=self.executor, limits=Limits())
        self.transport = FakeTransport()
        self.protocol = HttpProtocol(self.server, self.loop)
        self.protocol.connection_made(self.transport)  # type: ignore[arg-type]

    def ask(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send one request and wait for its answer (run on the loop, or in the pool)."""
        sent = len(self.transport.data)
        self.protocol.data_received(raw)
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in self.transport.data[sent:] or self.protocol.busy:
            assert time.monotonic() < deadline, "no answer"
            self.loop.run_until_complete(asyncio.sleep(0.005))
        head, _, body = bytes(self.transport.data[sent:]).partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines)
        return int(status_line.split()[1]), headers, body

    def close(self) -> None:
        self.protocol.connection_lost(None)
        self.executor.shutdown(wait=True)
        self.loop.close()


@pytest.fixture
def worker(app: Flask) -> Iterator[Worker]:
    w = Worker(app)
    yield w
    w.close()


class ForgetsAfterPeek(TokenReviewer):
    """A TokenReviewer whose answer from its cache (an identity, or a refusal) ends just after
    the loop looked at it: `pause` seconds pass between `Inline` and the route, both on the
    loop."""

    def __init__(self, review: Any, *, pause: float, **options: Any) -> None:
        super().__init__(review, trust_domain="cluster.local", **options)
        self.pause = pause

    def peek(self, bearer: str) -> Identity | None:
        try:
            found = super().peek(bearer)
        except AuthError:
            time.sleep(self.pause)
            raise
        if found is not None:
            time.sleep(self.pause)
        return found


def _reviews(app: Flask, *, known: str, **options: Any) -> list[int]:
    """Install a ForgetsAfterPeek whose API server accepts `known` (as shop/web); the list
    records the thread of every review."""
    threads: list[int] = []

    def review(token: str) -> dict[str, Any]:
        threads.append(threading.get_ident())
        return SA_WEB if token == known else {"authenticated": False, "error": "invalid token"}

    app.extensions["smictl"].authenticator = ForgetsAfterPeek(review, pause=1.0, **options)
    return threads


def _request(method: str, path: str, token: str, body: dict[str, Any] | None = None) -> bytes:
    data = json.dumps(body).encode() if body is not None else b""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: smictl\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


AUTHZ_INPUT = {"input": {"source": "shop/web", "destination": "shop/api", "port": 80}}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/mesh/v1/policy", None), ("POST", "/v1/data/smictl/authz", AUTHZ_INPUT)],
    ids=["policy", "data-api"],
)
def test_a_request_run_on_the_loop_is_not_reviewed_again_there(
    app: Flask, worker: Worker, method: str, path: str, body: dict[str, Any] | None
) -> None:
    threads = _reviews(app, known="sa-token", cache_seconds=1.0)
    # First: not in the cache, so reviewed in a pool thread.
    status, _, _ = worker.ask(_request(method, path, "sa-token", body))
    assert status == 200 and len(threads) == 1
    assert threads[0] != threading.get_ident()
    # Then: known from the cache, so run on the loop; the entry ends before the route runs.
    status, _, answer = worker.ask(_request(method, path, "sa-token", body))
    assert status == 200, answer
    assert threading.get_ident() not in threads, "a TokenReview ran on the event loop"
    assert len(threads) == 1


def test_a_refusal_found_on_the_loop_is_answered_as_found(app: Flask, worker: Worker) -> None:
    """A token refused a moment ago is answered 401 on the loop; the route does not review it
    again there when the remembered refusal ends meanwhile."""
    threads = _reviews(app, known="sa-token", refusal_seconds=1.0)
    request = _request("POST", "/v1/data/smictl/authz", "stolen", AUTHZ_INPUT)
    status, _, _ = worker.ask(request)
    assert status == 401 and len(threads) == 1  # reviewed in the pool, refused
    status, headers, answer = worker.ask(request)
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="smictl"'
    assert json.loads(answer) == {
        "code": "unauthorized",
        "message": "token rejected by the API server: invalid token",
    }
    assert threading.get_ident() not in threads and len(threads) == 1


def test_inline_keeps_what_it_found_for_the_route(
    settings: Settings, policy_set: PolicySet, tmp_path: Path
) -> None:
    app = create_app(with_admin_token(settings, tmp_path), policies=policy_set)
    inline = getattr(app, INLINE_ATTR)
    base = {"REQUEST_METHOD": "GET", "PATH_INFO": "/mesh/v1/policy"}
    workload = {**base, "HTTP_AUTHORIZATION": reader(app.test_client())["Authorization"]}
    assert inline(workload) and workload[PARKED_READER] == "spiffe://cluster.local/ns/shop/sa/web"
    admin = {**base, "HTTP_AUTHORIZATION": f"Bearer {ADMIN_TOKEN}"}
    assert inline(admin) and admin[PARKED_READER] == LOCAL_ADMIN
    refused = dict(base)
    assert inline(refused) and isinstance(refused[PARKED_READER], AuthError)
    _reviews(app, known="sa-token")
    unknown = {**base, "HTTP_AUTHORIZATION": "Bearer sa-token"}
    assert not inline(unknown) and PARKED_READER not in unknown  # the pool reviews it
    app.extensions["smictl"].store.close()


@pytest.mark.parametrize("name", ["smictl.policy_reader", "Smictl.Policy-Reader"])
def test_a_client_cannot_name_itself_the_reader(worker: Worker, name: str) -> None:
    """Headers become HTTP_* keys only: the key the loop keeps the reader under is out of a
    client's reach, whatever it sends."""
    raw = f"GET /mesh/v1/policy HTTP/1.1\r\nHost: smictl\r\n{name}: {LOCAL_ADMIN}\r\n\r\n"
    status, headers, answer = worker.ask(raw.encode())
    assert status == 401 and "ETag" not in headers
    assert "Authorization: Bearer" in json.loads(answer)["error"]

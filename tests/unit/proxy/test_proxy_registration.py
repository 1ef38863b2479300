"""Endpoint registration: leases renewed at a third of the TTL the control plane grants."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from proxy import registration
from proxy.httpclient import HttpClientError, Response
from proxy.registration import Registrar, Registration


class FakeControlPlane:
    def __init__(self, *, ttl: Any, fail_first: int = 0) -> None:
        self.ttl = ttl
        self.fail_first = fail_first
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def request(self, method: str, url: str, **kw: Any) -> Response:
        self.calls.append((method, json.loads(kw["body"])))
        if self.fail_first > 0:
            self.fail_first -= 1
            raise HttpClientError("connection refused")
        answer = {"revision": 1} if self.ttl is None else {"revision": 1, "ttl_seconds": self.ttl}
        return Response(status=200, body=json.dumps(answer).encode())


def registrar(plane: FakeControlPlane, monkeypatch: pytest.MonkeyPatch) -> Registrar:
    monkeypatch.setattr(registration, "request", plane.request)
    entries = [
        Registration("127.0.0.1", 15006, ("web",)),
        Registration("127.0.0.1", 15007, ("api",)),
    ]
    return Registrar(url="https://cp/mesh/v1/endpoints", token="t", ssl_context=None,
                     entries=entries)  # fmt: skip


async def run_for(r: Registrar, seconds: float) -> None:
    task = asyncio.ensure_future(r.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_registrations_are_renewed_every_third_of_the_granted_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plane = FakeControlPlane(ttl=0.3)
    r = registrar(plane, monkeypatch)
    asyncio.run(run_for(r, 0.35))
    ports = [body["port"] for method, body in plane.calls if method == "POST"]
    # at 0, ~0.1, ~0.2, ~0.3 s: each entry posted three or four times, always whole
    assert 3 <= ports.count(15006) <= 4 and 3 <= ports.count(15007) <= 4
    assert all(body["services"] for _, body in plane.calls)
    assert r.ttl == 0.3


def test_a_refused_renewal_is_retried_and_deregistration_covers_every_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plane = FakeControlPlane(ttl=0.3, fail_first=2)
    r = registrar(plane, monkeypatch)
    asyncio.run(run_for(r, 0.8))  # two refusals (backoff 0.2 + 0.1 s), then registrations
    assert sum(1 for m, b in plane.calls if m == "POST" and b["port"] == 15007) >= 1
    asyncio.run(r.deregister())
    assert [b["port"] for m, b in plane.calls if m == "DELETE"] == [15006, 15007]


@pytest.mark.parametrize("ttl", [None, 0, -5, "60", True])
def test_a_control_plane_that_grants_no_usable_lease_is_renewed_at_the_default(
    ttl: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plane = FakeControlPlane(ttl=ttl)
    r = registrar(plane, monkeypatch)
    asyncio.run(run_for(r, 0.05))
    assert r.ttl == registration.DEFAULT_TTL
    assert len(plane.calls) == 2  # registered once each; the next renewal is 20 s away

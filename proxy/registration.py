"""Endpoint registration (local mode, DESIGN.md §5): a proxy tells the control plane which
services its workload backs and where its inbound listener is, and takes it back on shutdown.

`POST /mesh/v1/endpoints` (and `DELETE` with the same address and port) with
`{"address", "port", "services"}` and `Authorization: Bearer <token>`: the token proves the
identity, and the control plane only accepts services of that identity's namespace. The
endpoint then reaches every proxy inside the MeshPolicy, like any other.

A registration is a lease: the answer carries `ttl_seconds`, and the proxy posts the same
registration again every third of it for as long as it runs. A proxy that dies without
deregistering (SIGKILL, a lost host) so leaves the policy one TTL later instead of never.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass

from proxy.httpclient import HttpClientError, request
from proxy.token import BearerToken, bearer

log = logging.getLogger("smictl.proxy.registration")

DEFAULT_TTL = 60.0  # a control plane that names no TTL (older than leases) is renewed at this
# The shortest wait between two registrations of an entry, renewals and retries alike: the lease
# is the control plane's word, and a tiny one (`"ttl_seconds": 1e-9`) must not turn renewal
# into a loop of requests as fast as the control plane answers.
MIN_INTERVAL = 0.1


@dataclass(frozen=True, slots=True)
class Registration:
    """Inbound listener `address:port` serves `services` ("name" or "ns/name")."""

    address: str
    port: int
    services: tuple[str, ...]


class Registrar:
    def __init__(
        self,
        *,
        url: str,
        token: str | BearerToken,
        ssl_context: ssl.SSLContext | None,
        entries: list[Registration],
    ) -> None:
        self.url = url
        self.token = bearer(token)  # read from its file for every call (proxy.token)
        self.ssl_context = ssl_context
        self.entries = entries
        self.registered: list[Registration] = []
        self.ttl = DEFAULT_TTL

    async def _send(self, method: str, entry: Registration) -> int:
        body: dict[str, object] = {"address": entry.address, "port": entry.port}
        if method == "POST":
            body["services"] = list(entry.services)
        headers = {"content-type": "application/json", "authorization": f"Bearer {self.token()}"}
        resp = await request(
            method,
            self.url,
            headers=headers,
            body=json.dumps(body).encode(),
            ssl_context=self.ssl_context,
            deadline=5.0,
        )
        if resp.status != 200:
            reason = resp.body[:200].decode("utf-8", "replace").strip()
            log.error(
                "%s %s for %s:%d: %d %s",
                method,
                self.url,
                entry.address,
                entry.port,
                resp.status,
                reason,
            )
        elif method == "POST":
            self.ttl = _ttl_of(resp.body, default=self.ttl)
        return resp.status

    async def run(self) -> None:
        """Register every entry, then renew them every third of the lease, for as long as the
        proxy runs; each (re)registration is retried with backoff until the control plane
        accepts it."""
        # Counted as registered from the first attempt: a POST in flight when shutdown starts
        # may still land, and must be withdrawn too (a DELETE of an endpoint the control plane
        # never stored is harmless).
        self.registered.extend(self.entries)
        first = True
        while True:
            for entry in self.entries:
                await self._register(entry, first=first)
            first = False
            await asyncio.sleep(max(MIN_INTERVAL, self.ttl / 3))

    async def _register(self, entry: Registration, *, first: bool) -> None:
        delay = 0.2
        while True:
            try:
                if await self._send("POST", entry) == 200:
                    log.log(
                        logging.INFO if first else logging.DEBUG,
                        "%s %s:%d for %s (lease %.0f s)",
                        "registered" if first else "renewed",
                        entry.address,
                        entry.port,
                        ", ".join(entry.services),
                        self.ttl,
                    )
                    return
            except HttpClientError as exc:
                log.error("cannot register with %s: %s", self.url, exc)
            await asyncio.sleep(delay)
            delay = max(MIN_INTERVAL, min(delay * 2, 15.0, self.ttl / 3))

    async def deregister(self) -> None:
        """Best effort, at shutdown: callers should stop picking this endpoint."""
        for entry in self.registered:
            try:
                await self._send("DELETE", entry)
            except HttpClientError as exc:
                log.warning("cannot deregister from %s: %s", self.url, exc)
        self.registered.clear()


_FOREVER = float("inf")


def _ttl_of(body: bytes, *, default: float) -> float:
    """The lease the control plane granted; a missing or odd value keeps `default`. Odd
    includes what would end the registration loop if it escaped: nesting too deep to decode
    (RecursionError), an integer too large for a float (OverflowError)."""
    try:
        ttl = json.loads(body).get("ttl_seconds")
        if isinstance(ttl, bool) or not isinstance(ttl, int | float):
            return default
        seconds = float(ttl)
    except (ValueError, AttributeError, RecursionError, OverflowError):
        return default
    return seconds if 0 < seconds < _FOREVER else default  # NaN fails the range check too

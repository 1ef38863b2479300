"""Endpoint registration (local mode, DESIGN.md §5): a proxy tells the control plane which
services its workload backs and where its inbound listener is, and takes it back on shutdown.

`POST /mesh/v1/endpoints` (and `DELETE` with the same address and port) with
`{"address", "port", "services"}` and `Authorization: Bearer <token>`: the token proves the
identity, and the control plane only accepts services of that identity's namespace. The
endpoint then reaches every proxy inside the MeshPolicy, like any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass

from proxy.httpclient import HttpClientError, request

log = logging.getLogger("smictl.proxy.registration")


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
        token: str,
        ssl_context: ssl.SSLContext | None,
        entries: list[Registration],
    ) -> None:
        self.url = url
        self.token = token
        self.ssl_context = ssl_context
        self.entries = entries
        self.registered: list[Registration] = []

    async def _send(self, method: str, entry: Registration) -> int:
        body: dict[str, object] = {"address": entry.address, "port": entry.port}
        if method == "POST":
            body["services"] = list(entry.services)
        headers = {"content-type": "application/json", "authorization": f"Bearer {self.token}"}
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
        return resp.status

    async def run(self) -> None:
        """Register every entry, retrying (with backoff) until the control plane accepts."""
        for entry in self.entries:
            # Counted as registered from the first attempt: a POST in flight when shutdown
            # starts may still land, and must be withdrawn too (a DELETE of an endpoint the
            # control plane never stored is harmless).
            self.registered.append(entry)
            delay = 0.2
            while True:
                try:
                    if await self._send("POST", entry) == 200:
                        log.info(
                            "registered %s:%d for %s",
                            entry.address,
                            entry.port,
                            ", ".join(entry.services),
                        )
                        break
                except HttpClientError as exc:
                    log.error("cannot register with %s: %s", self.url, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    async def deregister(self) -> None:
        """Best effort, at shutdown: callers should stop picking this endpoint."""
        for entry in self.registered:
            try:
                await self._send("DELETE", entry)
            except HttpClientError as exc:
                log.warning("cannot deregister from %s: %s", self.url, exc)
        self.registered.clear()

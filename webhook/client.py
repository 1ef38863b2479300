"""The HTTPS client `smictl apply/get/delete` use to talk to `smictl serve`.

stdlib only (http.client + ssl), so the CLI needs nothing the server does not. The server's
certificate is verified against `--ca` / SMICTL_CA_FILE, else the CA `smictl certs init` wrote
to the state directory, else the system trust store. Connection failures become SMI7001 and
refusals carry the server's reasons (SMI7002) — never a traceback.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from smi.errors import Diagnostic, SMIError
from webhook.settings import default_state_dir

DEFAULT_SERVER = "https://127.0.0.1:8443"


def default_ca_file() -> Path | None:
    env = os.environ.get("SMICTL_CA_FILE")
    if env:
        return Path(env)
    candidate = default_state_dir() / "certs" / "ca.crt"
    return candidate if candidate.is_file() else None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ControlPlaneClient:
    server: str = DEFAULT_SERVER
    ca_file: Path | None = None
    timeout: float = 30.0

    def request(
        self, method: str, path: str, *, body: Any = None, query: dict[str, str] | None = None
    ) -> Reply:
        url = urlsplit(self.server)
        if url.scheme not in {"https", "http"} or not url.hostname:
            raise SMIError(Diagnostic("SMI7001", f"--server {self.server!r} is not an https URL"))
        target = path + (f"?{urlencode(query)}" if query else "")
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        conn = self._connection(url.scheme, url.hostname, url.port)
        try:
            conn.request(method, target, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise SMIError(
                Diagnostic("SMI7001", f"cannot reach the control plane at {self.server}: {exc}")
            ) from exc
        finally:
            conn.close()
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {"error": raw.decode(errors="replace")[:200]}
        return Reply(status=response.status, body=doc if isinstance(doc, dict) else {"items": doc})

    def _connection(self, scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
        if scheme == "http":
            return http.client.HTTPConnection(host, port or 80, timeout=self.timeout)
        context = ssl.create_default_context()
        ca = self.ca_file or default_ca_file()
        if ca is not None:
            try:
                context.load_verify_locations(cafile=str(ca))
            except (OSError, ssl.SSLError) as exc:
                raise SMIError(Diagnostic("SMI7003", f"cannot read CA file {ca}: {exc}")) from exc
        return http.client.HTTPSConnection(host, port or 443, timeout=self.timeout, context=context)


def refused(reply: Reply) -> SMIError:
    """The error for a reply that is not a success, carrying the server's reason."""
    reason = str(reply.body.get("error") or f"HTTP {reply.status}")
    return SMIError(Diagnostic("SMI7002", f"control plane refused the request: {reason}"))

"""A real `smictl serve` for the server targets and the demo: gunicorn over TLS on 127.0.0.1
port 0, local mode (SQLite store), its own CA in a temporary directory, and a small HTTPS client
that speaks its APIs: the local apply/delete API, AdmissionReview (`/validate`),
ConversionReview (`/convert`), the served MeshPolicy, endpoint registration, bootstrap tokens.

Everything a scenario or the demo does goes through these public HTTP APIs, as a cluster's
API server or a proxy would; the store API with the admin token of the control plane it started
(`admin.token` in its certs directory), as `smictl apply` does.
"""

from __future__ import annotations

import http.client
import json
import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conformance.targets.base import TargetError
from conformance.targets.processes import LAUNCH, Child, spawn, wait_for

STORE_API = "/apis/"
POLICY_API = "/mesh/v1/policy"
ADMISSION_V1 = "admission.k8s.io/v1"
CONVERSION_V1 = "apiextensions.k8s.io/v1"
READY_PROBE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class ControlPlane:
    """One `smictl serve` process tree and a keep-alive HTTPS client to it."""

    def __init__(
        self,
        workdir: Path,
        *,
        mode: str = "deny",
        workers: int = 1,
        shipped_policies: bool = False,
    ) -> None:
        self.workdir = workdir
        self.mode = mode
        self.workers = workers
        self.shipped_policies = shipped_policies
        self.certs = workdir / "certs"
        self.bind = "127.0.0.1:0"
        self.url = ""
        self.child: Child | None = None
        self._conn: http.client.HTTPSConnection | None = None
        self._ssl: ssl.SSLContext | None = None
        self._admin_token = ""

    @property
    def ca_file(self) -> Path:
        return self.certs / "ca.crt"

    @property
    def admin_token_file(self) -> Path:
        from webhook.client import ADMIN_TOKEN_FILE

        return self.certs / ADMIN_TOKEN_FILE

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, *, timeout: float = 30.0) -> None:
        from webhook.cli import ensure_admin_token, ensure_certs
        from webhook.client import read_admin_token

        self.workdir.mkdir(parents=True, exist_ok=True)
        ensure_certs(self.certs)
        ensure_admin_token(self.admin_token_file, flag="--certs-dir")
        self._admin_token = read_admin_token(self.admin_token_file)
        address = self.workdir / f"address-{self.mode}"
        address.unlink(missing_ok=True)
        argv = [
            *LAUNCH,
            "serve",
            "--bind",
            self.bind,
            "--certs-dir",
            str(self.certs),
            # Named, so an SMI_WEBHOOK_ADMIN_TOKEN_FILE in the caller's environment cannot
            # make the server demand another token than the one this client sends.
            "--admin-token-file",
            str(self.admin_token_file),
            "--store",
            str(self.workdir / "store.db"),
            "--mode",
            self.mode,
            "--workers",
            str(self.workers),
            "--threads",
            # Each worker lets half its threads hold a long poll; every proxy of the suite
            # must be able to wait at once, or updates reach some only after a 1 s retry.
            "48",
            "--address-file",
            str(address),
        ]
        env = {
            "XDG_STATE_HOME": str(self.workdir / "state"),
            "SMI_WEBHOOK_LONG_POLL_SECONDS": "5",
            # The conformance suite tests SMI semantics, not an organisation's Rego rules.
            "SMI_WEBHOOK_SHIPPED_POLICIES": "true" if self.shipped_policies else "false",
            # gunicorn's metrics directory, inside the work directory: left to itself, the
            # control plane makes one in /tmp per start and never removes it.
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "metrics"),
        }
        self.child = spawn(f"control-plane-{self.mode}", argv, log_dir=self.workdir, env=env)
        self.url = wait_for(
            lambda: _read(address),
            what="the control plane to listen",
            timeout=timeout,
            watch=[self.child],
        )
        self._ssl = ssl.create_default_context(cafile=str(self.ca_file))
        wait_for(
            self._ready, what="the control plane to be ready", timeout=timeout, watch=[self.child]
        )

    def stop(self) -> None:
        self.close()
        if self.child is not None:
            self.child.stop(grace=10.0)
            self.child = None

    def restart(self, *, mode: str) -> None:
        """A control plane in another mode, on the same store and port (mode is a serve
        setting; proxies keep the URLs they were started with)."""
        if self.url:
            self.bind = f"127.0.0.1:{self.url.rsplit(':', 1)[1]}"
        self.stop()
        self.mode = mode
        self.start()

    def _ready(self) -> bool | None:
        # A short timeout per probe: a server that accepts but never answers must not hold
        # one probe (and so the bounded wait around it) for the default 30 s, twice.
        try:
            reply = self.request("GET", "/readyz", timeout=READY_PROBE_TIMEOUT)
        except TargetError:
            return None
        return True if reply.status == 200 else None

    # --- HTTP ----------------------------------------------------------------------------------

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Reply:
        if not self.url or self._ssl is None:
            raise TargetError("the control plane is not running")
        payload = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", "Accept": "application/json"}
        # Only where it is asked for: the store API, and the policy (which the control plane
        # serves to workloads and to the admin token's holder).
        asks = path.startswith(STORE_API) or path.startswith(POLICY_API)
        if asks and self._admin_token:
            hdrs["Authorization"] = f"Bearer {self._admin_token}"
        hdrs.update(headers or {})
        for attempt in (1, 2):  # a keep-alive connection the server closed: reconnect once
            conn = self._connection(timeout)
            try:
                conn.request(method, path, body=payload, headers=hdrs)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 2:
                    raise TargetError(f"{method} {self.url}{path}: {exc}") from exc
        try:
            doc: Any = json.loads(raw) if raw else None
        except ValueError:
            doc = raw.decode(errors="replace")
        return Reply(resp.status, doc, {k.lower(): v for k, v in resp.getheaders()})

    def _connection(self, timeout: float) -> http.client.HTTPSConnection:
        if self._conn is None:
            url = urlsplit(self.url)
            assert url.hostname is not None
            self._conn = http.client.HTTPSConnection(
                url.hostname, url.port or 443, timeout=timeout, context=self._ssl
            )
        self._conn.timeout = timeout
        return self._conn

    # --- the control plane's APIs ----------------------------------------------------------------

    def apply(self, docs: list[dict[str, Any]]) -> Reply:
        return self.request("POST", "/apis/smictl.io/v1/apply", body={"items": docs})

    def delete(self, refs: list[dict[str, Any]], *, ignore_missing: bool = False) -> Reply:
        return self.request(
            "POST",
            "/apis/smictl.io/v1/delete",
            body={"items": refs, "ignoreNotFound": ignore_missing},
        )

    def objects(self) -> list[dict[str, Any]]:
        reply = self.request("GET", "/apis/smictl.io/v1/objects")
        if reply.status != 200:
            raise TargetError(f"listing the store failed: HTTP {reply.status}: {reply.body}")
        body = reply.body
        items = body.get("items", []) if isinstance(body, dict) else body
        return [i for i in items if isinstance(i, dict)]

    def clear(self) -> None:
        """Delete every stored object, so the next scenario starts from an empty mesh."""
        refs = [ref_of(o) for o in self.objects()]
        if refs:
            reply = self.delete(refs, ignore_missing=True)
            if reply.status != 200:
                raise TargetError(f"emptying the store failed: HTTP {reply.status}: {reply.body}")

    def validate(self, request: dict[str, Any]) -> dict[str, Any]:
        review = {"apiVersion": ADMISSION_V1, "kind": "AdmissionReview", "request": request}
        reply = self.request("POST", "/validate", body=review)
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise TargetError(f"/validate answered HTTP {reply.status}: {reply.body}")
        response = reply.body.get("response")
        if not isinstance(response, dict) or response.get("uid") != request["uid"]:
            raise TargetError(
                f"/validate: not an AdmissionReview answer for this uid: {reply.body}"
            )
        return response

    def convert(self, doc: dict[str, Any], to: str) -> tuple[dict[str, Any] | None, str]:
        """(converted object, "") or (None, the failure message)."""
        uid = str(uuid.uuid4())
        review = {
            "apiVersion": CONVERSION_V1,
            "kind": "ConversionReview",
            "request": {"uid": uid, "desiredAPIVersion": to, "objects": [doc]},
        }
        reply = self.request("POST", "/convert", body=review)
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise TargetError(f"/convert answered HTTP {reply.status}: {reply.body}")
        response = reply.body.get("response") or {}
        result = response.get("result") or {}
        if result.get("status") != "Success":
            return None, str(result.get("message") or result)
        objects = response.get("convertedObjects") or []
        return (objects[0] if objects else None), ""

    def policy(self) -> tuple[str, bytes]:
        """(ETag, MeshPolicy JSON) as the control plane serves it to proxies."""
        reply = self.request("GET", "/mesh/v1/policy")
        if reply.status != 200:
            raise TargetError(f"/mesh/v1/policy answered HTTP {reply.status}")
        return reply.headers.get("etag", ""), json.dumps(reply.body).encode()

    def token(self, identity: str) -> str:
        """A bootstrap token bound to `identity` (`ns/sa`), as `smictl certs token` prints."""
        from smi.identity import Identity
        from webhook.auth import BootstrapTokens, token_key
        from webhook.cli import load_ca_dir

        ident = Identity.parse(identity)
        ca = load_ca_dir(self.certs)
        tokens = BootstrapTokens(key=token_key(ca.key), trust_domain=ident.trust_domain)
        return tokens.issue(ident, ttl_seconds=6 * 3600)


def ref_of(doc: dict[str, Any]) -> dict[str, Any]:
    meta = doc.get("metadata") or {}
    ref = {"apiVersion": doc.get("apiVersion"), "kind": doc.get("kind"), "name": meta.get("name")}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    return ref


def _read(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None

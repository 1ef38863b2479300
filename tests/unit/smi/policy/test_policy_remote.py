"""RemoteOPA (opa-python-client) against a tiny OPA-compatible Data API on 127.0.0.1.

The server answers `POST /v1/data/<path>` through `PolicySet.data_api` (the embedded engine;
undefined -> `{}`, as OPA does), so the remote verdicts must equal the embedded ones.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from policy_types import WritePolicy

from smi.errors import PolicyError
from smi.policy.admission import admit
from smi.policy.policyset import PolicySet

pytestmark = pytest.mark.integration

# Denied by a shipped deny policy (allowed-source-namespaces: a source in another namespace):
# only deny policies fail closed, so the fail-closed tests need one that applies.
TARGET = {
    "apiVersion": "access.smi-spec.io/v1alpha3",
    "kind": "TrafficTarget",
    "metadata": {"name": "scraper-to-api", "namespace": "shop", "labels": {"owner": "me"}},
    "spec": {
        "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
        "rules": [{"kind": "TCPRoute", "name": "api-port"}],
        "sources": [{"kind": "ServiceAccount", "name": "scraper", "namespace": "monitoring"}],
    },
}
REQUEST = {
    "uid": "r-1",
    "kind": {"kind": "TrafficTarget"},
    "namespace": "shop",
    "operation": "CREATE",
    "object": TARGET,
}


class DataAPI(ThreadingHTTPServer):
    def __init__(self, policies: PolicySet) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.policies = policies
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.authorizations: list[str | None] = []
        self.fail_with: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: DataAPI

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _reply(self, code: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply(200, {}) if self.path == "/health" else self._reply(404, {})

    def do_POST(self) -> None:
        doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        path = self.path.removeprefix("/v1/data/")
        self.server.seen.append((path, doc))
        self.server.authorizations.append(self.headers.get("Authorization"))
        if self.server.fail_with is not None:
            self._reply(self.server.fail_with, {"code": "internal_error", "message": "boom"})
            return
        self._reply(*self.server.policies.data_api(path, doc["input"]))


@pytest.fixture
def server(shipped: PolicySet) -> Iterator[DataAPI]:
    srv = DataAPI(shipped)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while True:  # readiness by polling, not by sleeping
        try:
            if requests.get(f"{srv.url}/health", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def test_remote_verdicts_equal_the_embedded_ones(server: DataAPI, shipped: PolicySet) -> None:
    remote = PolicySet.load(remote=server.url)
    server.seen.clear()  # loading asked for each package (missing_packages)
    embedded = admit(REQUEST, shipped)
    over_http = admit(REQUEST, remote)
    assert (over_http.code, over_http.messages, over_http.warnings) == (
        embedded.code,
        embedded.messages,
        embedded.warnings,
    )
    assert over_http.code == 403
    assert over_http.messages[0].startswith(
        "[allowed-source-namespaces] source monitoring/scraper is in namespace monitoring"
    )
    asked = dict(server.seen)
    assert set(asked) == {  # the policies whose kinds match, nothing else
        "smi/admission/access/allowed_source_namespaces/violation",
        "smi/admission/access/no_default_serviceaccount/violation",
        "smi/admission/access/sensitive_destination/violation",
        "smi/admission/meta/owner_label/violation",
    }
    body = asked["smi/admission/access/allowed_source_namespaces/violation"]
    assert body["input"]["request"]["uid"] == "r-1"
    assert body["input"]["hub"]["kind"] == "TrafficTarget"


def test_a_token_goes_with_every_request_over_https_only(
    server: DataAPI, shipped: PolicySet, tmp_path: Path
) -> None:
    """OPA's token authentication (and serve's Data API) reads `Authorization: Bearer`; the
    token is a credential, so it is refused with a plain http URL, whoever loads the set."""
    import ssl

    from smi.errors import PolicyError
    from smi.pki import CertificateAuthority

    with pytest.raises(PolicyError, match="a token is sent over https only"):
        PolicySet.load(remote=server.url, remote_token="smi1.abc.def")
    admit(REQUEST, PolicySet.load(remote=server.url))
    assert server.authorizations and set(server.authorizations) == {None}

    ca = CertificateAuthority.create()
    cert, key = ca.issue_server(dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    (tmp_path / "s.crt").write_bytes(cert)
    (tmp_path / "s.key").write_bytes(key)
    tls = DataAPI(shipped)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    thread = threading.Thread(target=tls.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{tls.server_address[1]}"
        with_token = PolicySet.load(
            remote=url, remote_ca=tmp_path / "ca.pem", remote_token="smi1.abc.def"
        )
        admit(REQUEST, with_token)
        assert tls.authorizations and set(tls.authorizations) == {"Bearer smi1.abc.def"}
    finally:
        tls.shutdown()
        tls.server_close()
        thread.join(timeout=5)


def test_a_server_without_the_policy_is_refused_at_load(
    server: DataAPI, write_policy: WritePolicy
) -> None:
    # The server answers {} (undefined) for a package it lacks; read as "no violation", this
    # always-denying policy admitted everything.
    root = write_policy("unknown-to-server", 'violation contains "no" if true\n')
    with pytest.raises(PolicyError) as info:
        PolicySet.load([root], include_shipped=False, remote=server.url)
    [d] = info.value.diagnostics
    assert d.code == "SMI5006" and d.file is not None and d.file.endswith("policy.rego")
    assert f"the OPA at {server.url} does not hold package" in d.message
    # A server that holds every policy loads, and each package was asked once.
    assert PolicySet.load(remote=server.url).policies
    assert {p for p, _ in server.seen} >= {"smi/admission/meta/owner_label"}


def test_load_does_not_judge_a_server_that_cannot_answer(server: DataAPI) -> None:
    # Evaluation against it fails closed anyway (test_server_error_fails_closed).
    server.fail_with = 500
    assert PolicySet.load(remote=server.url).policies
    assert len(server.seen) == 1  # probing stopped at the first failure


def test_server_error_fails_closed(server: DataAPI) -> None:
    server.fail_with = 500
    result = admit(REQUEST, PolicySet.load(remote=server.url))
    assert result.code == 403
    assert "[canary-step]" not in "".join(result.messages)  # kinds still filter what is asked
    assert all(
        "policy evaluation failed: OPA at" in m and "HTTP 500: boom" in m for m in result.messages
    )


def test_unreachable_server_fails_closed_with_smi5006(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens there
    result = admit(REQUEST, PolicySet.load(remote=f"http://127.0.0.1:{port}"))
    assert result.code == 403
    assert "unreachable (SMI5006)" in result.messages[0]

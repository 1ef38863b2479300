"""Two holes a review found in today's admission and token changes.

- The lossy-fields annotation carries grants an older version cannot hold (IdentityBinding
  sources, UDPRoute rules) that the compiler enforces. A change to it was a "metadata-only"
  UPDATE, let through unchecked on an object being deleted: a stuck finalizer let anyone graft
  a grant no policy saw.
- A bootstrap token's payload was parsed before its MAC was checked: 3,000 nested lists made
  json.loads raise RecursionError, a 500 with a traceback instead of a 401.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest

from smi.pki import CertificateAuthority
from smi.policy.policyset import PolicySet
from webhook import create_app
from webhook.auth import TOKEN_PREFIX, AuthError, BootstrapTokens, token_key
from webhook.settings import Settings

LOSSY = (
    '{"sources":{"value":[{"group":"","kind":"ServiceAccount","name":"web","namespace":"shop",'
    '"port":null},{"group":"","kind":"IdentityBinding","name":"intruders","namespace":"evil",'
    '"port":null}],"was":"51c13ed91478fba6"}}'
)
OLD: dict[str, Any] = {
    "apiVersion": "access.smi-spec.io/v1alpha3",
    "kind": "TrafficTarget",
    "metadata": {
        "name": "web-to-db",
        "namespace": "shop",
        "labels": {"owner": "team"},
        "finalizers": ["example.com/keep"],
        "deletionTimestamp": "2024-01-01T00:00:00Z",
    },
    "spec": {
        "destination": {"kind": "ServiceAccount", "name": "db", "namespace": "shop"},
        "rules": [{"kind": "TCPRoute", "name": "db-port"}],
        "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}],
    },
}


def _review(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u1",
            "kind": {"group": "access.smi-spec.io", "version": "v1alpha3", "kind": "TrafficTarget"},
            "resource": {
                "group": "access.smi-spec.io",
                "version": "v1alpha3",
                "resource": "traffictargets",
            },
            "name": "web-to-db",
            "namespace": "shop",
            "operation": "UPDATE",
            "userInfo": {"username": "mallory"},
            "object": new,
            "oldObject": old,
        },
    }


def test_a_lossy_annotation_grant_on_an_object_being_deleted_is_checked(tmp_path: Path) -> None:
    ca = CertificateAuthority.create()
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem())
    (tmp_path / "ca.key").write_bytes(ca.key_pem())
    settings = Settings(
        store=tmp_path / "store.db",
        mesh_ca_cert_file=tmp_path / "ca.crt",
        mesh_ca_key_file=tmp_path / "ca.key",
    )
    app = create_app(settings, policies=PolicySet.load([]))
    new = copy.deepcopy(OLD)
    new["metadata"]["annotations"] = {"smictl.io/lossy-fields": LOSSY}
    try:
        answer = app.test_client().post("/validate", json=_review(OLD, new)).get_json()
    finally:
        app.extensions["smictl"].store.close()
    response = answer["response"]
    assert response["allowed"] is False
    assert "allowed-source-namespaces" in response["status"]["message"]


def test_a_token_payload_is_not_parsed_before_its_mac_is_checked() -> None:
    tokens = BootstrapTokens(key=token_key(CertificateAuthority.create().key), trust_domain="x")
    payload = base64.urlsafe_b64encode(b"[" * 3000).rstrip(b"=").decode()
    with pytest.raises(AuthError, match="signature"):
        tokens.authenticate(f"{TOKEN_PREFIX}.{payload}.AAAA")

"""Sidecar injection: who is injected, what the patch adds, and that it is idempotent."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonpatch
from flask.testing import FlaskClient

from smi.pki import CertificateAuthority
from smi.policy.policyset import PolicySet
from webhook.admission import NAMESPACE_OPTED_IN_PATH
from webhook.app import create_app, runs_inline
from webhook.injection import (
    INJECTED_KEY,
    PROXY_CONTAINER,
    InjectionConfig,
    decide,
    escape_pointer,
)
from webhook.settings import Settings

Review = Callable[..., dict[str, Any]]
CONFIG = InjectionConfig(image="registry.local/smictl:1", control_plane_url="https://cp:8443")


def pod(*, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web-1", "namespace": "shop"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "serviceAccountName": "web",
            "containers": [{"name": "app", "image": "web:1", "ports": [{"containerPort": 8080}]}],
            **spec,
        },
    }


def proxy_of(p: dict[str, Any]) -> dict[str, Any]:
    """The injected proxy, wherever its placement put it (initContainers or containers)."""
    spec = p["spec"]
    [proxy] = [
        c
        for key in ("initContainers", "containers")
        for c in spec.get(key) or ()
        if c["name"] == PROXY_CONTAINER
    ]
    return proxy


def inject(p: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    d = decide(p, namespace="shop", namespace_labels=labels or {}, config=CONFIG)
    assert d.inject, d.reason
    assert all(op["op"] == "add" for op in d.patch)
    return jsonpatch.apply_patch(p, list(d.patch))


def test_rfc6901_escaping() -> None:
    assert escape_pointer("smictl.io/injected") == "smictl.io~1injected"
    assert escape_pointer("a~b/c") == "a~0b~1c"


def test_annotated_pod_gets_the_proxy_with_identity_ports_volumes_and_readiness() -> None:
    out = inject(pod(annotations={"smictl.io/inject": "enabled"}))
    # A native sidecar by default: the first init container, the app containers untouched.
    assert [c["name"] for c in out["spec"]["containers"]] == ["app"]
    assert [c["name"] for c in out["spec"]["initContainers"]] == [PROXY_CONTAINER]
    proxy = out["spec"]["initContainers"][0]
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert proxy["image"] == "registry.local/smictl:1"
    assert env["SMI_PROXY_IDENTITY"] == "shop/web"
    assert env["SMI_PROXY_CSR_URL"] == "https://cp:8443/mesh/v1/certificates"
    assert env["SMI_PROXY_TOKEN_FILE"] == "/var/run/secrets/smictl/token/token"
    assert env["SMI_PROXY_POLICY"] == "https://cp:8443/mesh/v1/policy"
    assert env["SMI_PROXY_INBOUND"] == "15006:8080"
    # Peers reach the inbound listener on the pod IP, of either family (`*`); the outbound one
    # sends as this workload, so only the pod itself (loopback) may reach it.
    assert env["SMI_PROXY_BIND"] == "*" and env["SMI_PROXY_OUTBOUND_BIND"] == "127.0.0.1"
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 15020}
    assert proxy["securityContext"]["runAsNonRoot"] is True
    assert [v["name"] for v in out["spec"]["volumes"]] == ["smictl-certs", "smictl-token"]
    token = out["spec"]["volumes"][1]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "smictl"
    assert out["metadata"]["annotations"][INJECTED_KEY] == "true"


def test_the_sidecar_writes_its_key_only_to_an_in_memory_volume() -> None:
    """The root filesystem is read-only, and the proxy writes its key and certificate under
    $TMPDIR (proxy.tls): that must be a writable mount of a memory-backed volume, or the
    sidecar cannot start (and a key must not reach a node's disk)."""
    out = inject(pod(annotations={"smictl.io/inject": "enabled"}))
    proxy = proxy_of(out)
    assert proxy["securityContext"]["readOnlyRootFilesystem"] is True
    tmpdir = {e["name"]: e.get("value") for e in proxy["env"]}["TMPDIR"]
    mount = next(m for m in proxy["volumeMounts"] if m["mountPath"] == tmpdir)
    assert not mount.get("readOnly")
    volume = next(v for v in out["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["emptyDir"] == {"medium": "Memory"}


def test_namespace_label_opts_in_and_pod_annotation_disabled_wins() -> None:
    labels = {"smictl.io/inject": "enabled"}
    out = inject(pod(), labels)
    assert out["metadata"]["annotations"] == {INJECTED_KEY: "true"}  # map created by the patch
    refused = decide(
        pod(annotations={"smictl.io/inject": "disabled"}),
        namespace="shop",
        namespace_labels=labels,
        config=CONFIG,
    )
    assert not refused.inject and "disabled" in refused.reason
    nobody = decide(pod(), namespace="shop", namespace_labels={}, config=CONFIG)
    assert not nobody.inject and nobody.patch == ()


def test_existing_volumes_are_appended_to_not_replaced() -> None:
    out = inject(
        pod(annotations={"smictl.io/inject": "enabled"}, volumes=[{"name": "data", "emptyDir": {}}])
    )
    assert [v["name"] for v in out["spec"]["volumes"]] == ["data", "smictl-certs", "smictl-token"]


def test_injection_is_idempotent_and_host_network_is_skipped() -> None:
    once = inject(pod(annotations={"smictl.io/inject": "enabled"}))
    again = decide(once, namespace="shop", namespace_labels={}, config=CONFIG)
    assert not again.inject and again.patch == () and again.reason == "already injected"
    host = decide(
        pod(annotations={"smictl.io/inject": "enabled"}, hostNetwork=True),
        namespace="shop",
        namespace_labels={},
        config=CONFIG,
    )
    assert not host.inject and "host-network" in host.reason


def test_mutate_endpoint_returns_a_base64_json_patch(
    client: FlaskClient, make_review: Review
) -> None:
    review = make_review
    body = review(pod(annotations={"smictl.io/inject": "enabled"}), uid="u-1")
    answer = client.post("/mutate", json=body).get_json()
    response = answer["response"]
    assert response["uid"] == "u-1" and response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    patched = jsonpatch.apply_patch(body["request"]["object"], patch)
    proxy = patched["spec"]["initContainers"][0]
    assert proxy["name"] == PROXY_CONTAINER
    ca = {e["name"]: e.get("value") for e in proxy["env"]}["SMI_PROXY_CA_PEM"]
    assert ca == client.application.extensions["smictl"].ca.cert_pem().decode()
    # The injected pod, reviewed again, gets no patch.
    second = client.post("/mutate", json=review(patched, uid="u-2")).get_json()["response"]
    assert second["allowed"] is True and "patch" not in second


def test_proxies_get_the_serving_ca_to_verify_the_control_plane_with(
    settings: Settings, policy_set: PolicySet, tmp_path: Path, make_review: Review
) -> None:
    """Where the serving certificate has a CA of its own (the Helm chart), the proxy needs it
    to reach the control plane: its mesh CA signed no serving certificate. Read at every
    injection (the chart's Job renews it); unreadable, the pod is injected without it."""
    serving_ca = tmp_path / "serving-ca.crt"
    serving_ca.write_bytes(CertificateAuthority.create().cert_pem())
    app = create_app(replace(settings, serving_ca_file=serving_ca), policies=policy_set)
    try:
        client = app.test_client()

        def injected_env(uid: str) -> dict[str, str]:
            body = make_review(pod(annotations={"smictl.io/inject": "enabled"}), uid=uid)
            answer = client.post("/mutate", json=body).get_json()["response"]
            patched = jsonpatch.apply_patch(
                body["request"]["object"], json.loads(base64.b64decode(answer["patch"]))
            )
            return {e["name"]: e.get("value") for e in proxy_of(patched)["env"]}

        env = injected_env("u-1")
        assert env["SMI_PROXY_CONTROL_PLANE_CA_PEM"] == serving_ca.read_text()
        assert env["SMI_PROXY_CA_PEM"] != env["SMI_PROXY_CONTROL_PLANE_CA_PEM"]
        renewed = CertificateAuthority.create().cert_pem()
        serving_ca.write_bytes(renewed)
        assert injected_env("u-2")["SMI_PROXY_CONTROL_PLANE_CA_PEM"] == renewed.decode()
        serving_ca.unlink()
        assert "SMI_PROXY_CONTROL_PLANE_CA_PEM" not in injected_env("u-3")
    finally:
        app.extensions["smictl"].store.close()


def test_mutate_uses_the_stored_namespace_label(client: FlaskClient, make_review: Review) -> None:
    review = make_review
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "shop", "labels": {"smictl.io/inject": "enabled"}},
    }
    plane = client.application.extensions["smictl"]
    plane.store.apply([ns])
    response = client.post("/mutate", json=review(pod())).get_json()["response"]
    assert response.get("patchType") == "JSONPatch"


def test_namespace_selected_webhook_injects_before_the_cache_sees_the_label(
    client: FlaskClient, make_review: Review
) -> None:
    """A namespace labelled and a Deployment applied together: the API server has checked the
    label (namespaceSelector) before the control plane's cache hears of it."""
    plain, disabled = pod(), pod(annotations={"smictl.io/inject": "disabled"})
    answer = client.post(NAMESPACE_OPTED_IN_PATH, json=make_review(plain)).get_json()["response"]
    assert answer["allowed"] is True and answer.get("patchType") == "JSONPatch"
    patched = jsonpatch.apply_patch(plain, json.loads(base64.b64decode(answer["patch"])))
    assert proxy_of(patched)["name"] == PROXY_CONTAINER
    # The other path still reads the cache, which has no label: no patch.
    answer = client.post("/mutate", json=make_review(plain)).get_json()["response"]
    assert answer["allowed"] is True and "patch" not in answer
    # The pod's own `disabled` still wins.
    answer = client.post(NAMESPACE_OPTED_IN_PATH, json=make_review(disabled)).get_json()
    assert "patch" not in answer["response"]
    assert runs_inline({"REQUEST_METHOD": "POST", "PATH_INFO": NAMESPACE_OPTED_IN_PATH})


def test_mutate_skips_non_pods_and_excluded_namespaces(
    client: FlaskClient, make_review: Review
) -> None:
    review = make_review
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "a"}}
    assert "patch" not in client.post("/mutate", json=review(svc)).get_json()["response"]
    system = pod(annotations={"smictl.io/inject": "enabled"})
    system["metadata"]["namespace"] = "kube-system"
    response = client.post("/mutate", json=review(system)).get_json()["response"]
    assert response["allowed"] is True and "patch" not in response


def test_mutate_says_why_an_excluded_or_own_pod_is_not_injected(
    settings: Settings, policy_set: PolicySet, make_review: Review
) -> None:
    # The SPIFFE form of the setting counts too (`serve` accepts it): it was split at "/".
    own = "spiffe://cluster.local/ns/smictl-system/sa/smictl"
    app = create_app(replace(settings, service_account=own), policies=policy_set)
    try:
        client = app.test_client()
        system = pod(annotations={"smictl.io/inject": "enabled"})
        system["metadata"]["namespace"] = "kube-system"
        response = client.post("/mutate", json=make_review(system)).get_json()["response"]
        assert "patch" not in response
        assert response["status"]["message"] == (
            "not injected: namespace kube-system is excluded from smictl admission "
            "(SMI_WEBHOOK_EXCLUDED_NAMESPACES)"
        )
        body = make_review(
            pod(annotations={"smictl.io/inject": "enabled"}),
            username="system:serviceaccount:smictl-system:smictl",
        )
        response = client.post("/mutate", json=body).get_json()["response"]
        assert response["allowed"] is True and "patch" not in response
        assert response["status"]["message"] == (
            "not injected: request by the control plane's own service account smictl-system/smictl"
        )
        # Anyone else's opted-in pod is injected, with no skip reason.
        body = make_review(pod(annotations={"smictl.io/inject": "enabled"}))
        response = client.post("/mutate", json=body).get_json()["response"]
        assert "patch" in response and "status" not in response
    finally:
        app.extensions["smictl"].store.close()

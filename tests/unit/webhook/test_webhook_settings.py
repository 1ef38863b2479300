"""Settings from SMI_WEBHOOK_* and back; health and readiness."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from smi.errors import SMIError
from webhook.settings import Settings


def test_environment_round_trip() -> None:
    s = Settings(
        bind="0.0.0.0:9443",
        cert_file=Path("/c/tls.crt"),
        key_file=Path("/c/tls.key"),
        policies=(Path("/p/a"), Path("/p/b")),
        mode="audit",
        excluded_namespaces=("kube-system", "smictl-system"),
        store=Path("/var/lib/s.db"),
        kubeconfig="in-cluster",
        max_review_bytes=1024,
        threads=4,
    )
    env = s.to_env()
    assert env["SMI_WEBHOOK_POLICIES"] == "/p/a:/p/b"
    assert env["SMI_WEBHOOK_EXCLUDED_NAMESPACES"] == "kube-system,smictl-system"
    assert Settings.from_env(env) == s
    assert Settings.from_env(env).kubernetes


def test_defaults_and_in_cluster_flag() -> None:
    s = Settings.from_env({})
    assert s.bind == "127.0.0.1:8443" and s.mode == "deny" and not s.kubernetes
    assert Settings.from_env({"SMI_WEBHOOK_IN_CLUSTER": "true"}).kubeconfig == "in-cluster"


@pytest.mark.parametrize(
    ("name", "value"),
    [("MODE", "enforce"), ("MAX_REVIEW_BYTES", "-1"), ("THREADS", "many")],
)
def test_bad_values_are_one_line_errors(name: str, value: str) -> None:
    with pytest.raises(SMIError) as info:
        Settings.from_env({f"SMI_WEBHOOK_{name}": value})
    d = info.value.diagnostics[0]
    assert d.code == "SMI7009" and f"SMI_WEBHOOK_{name}={value!r}" in d.message


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
    # Not the policy's content hash: that is the ETag the policy route keeps to its readers.
    etag = client.application.extensions["smictl"].view().etag
    assert "hash" not in ready.get_json() and etag not in ready.get_data(as_text=True)


def test_unknown_route_is_json_404(client: FlaskClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.get_json()["code"] == 404


def test_shipped_policies_can_be_turned_off_by_env_and_flag() -> None:
    """The chart mounts its own copy of the policies and the conformance suite runs built-in
    validation only: both need the packaged policies off."""
    assert Settings().shipped_policies is True
    off = Settings.from_env({"SMI_WEBHOOK_SHIPPED_POLICIES": "false"})
    assert off.shipped_policies is False
    assert off.to_env()["SMI_WEBHOOK_SHIPPED_POLICIES"] == "false"
    assert Settings.from_env(off.to_env()) == off
    with pytest.raises(
        SMIError, match="SMI_WEBHOOK_SHIPPED_POLICIES='maybe': must be true or false"
    ):
        Settings.from_env({"SMI_WEBHOOK_SHIPPED_POLICIES": "maybe"})


def test_without_shipped_policies_only_the_given_directories_load() -> None:
    from webhook.policies import load_policies

    assert load_policies((), include_shipped=False).policies == ()
    shipped = {p.name for p in load_policies(()).policies}
    assert "canary-step" in " ".join(sorted(shipped))


def test_the_control_plane_url_of_injected_proxies_must_be_https() -> None:
    """Injected proxies send their ServiceAccount token there on every poll and CSR, and
    refuse to start with an http URL: serve and inject refuse it first, with the reason."""
    from webhook.settings import control_plane_url_problem

    assert control_plane_url_problem("https://smictl.smictl-system.svc:8443") is None
    assert control_plane_url_problem("HTTPS://cp:8443") is None
    assert control_plane_url_problem("http://cp:8443") == (
        "injected proxies send their ServiceAccount token there: it must be https"
    )
    assert control_plane_url_problem("cp:8443") == "not an http(s) URL with a host"

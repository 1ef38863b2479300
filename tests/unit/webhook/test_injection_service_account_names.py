"""The proxy's identity `ns/sa` comes from the pod's ServiceAccount name: one Kubernetes would
refuse (`Bad_SA`, not a DNS-1123 subdomain) is refused by the injector, in `/mutate` and in
`smictl inject`, as other malformed pods are, naming the field and the rule. It used to be
injected with `SMI_PROXY_IDENTITY=shop/Bad_SA`, an identity no certificate is issued for.

The deprecated `serviceAccount` is read as the API server reads it: in place of a missing or
empty `serviceAccountName`, and not at all beside one."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient

from smi.cli import main
from smi.identity import Identity, IdentityError
from webhook.injection import PROXY_CONTAINER, InjectionConfig, decide

Review = Callable[..., dict[str, Any]]
Capsys = pytest.CaptureFixture[str]
CONFIG = InjectionConfig(image="registry.local/smictl:1", control_plane_url="https://cp:8443")
RULE = (
    "is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending "
    "alphanumeric, at most 253 characters)"
)
BAD_NAMES = ["Bad_SA", "WEB", "web_", "-web", "web-", "web..v1", "web/admin", "web\n", "a" * 254]
GOOD_NAMES = ["web", "default", "web.v1", "web-2", "a" * 253]


def pod(*, opted_in: bool = True, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web-1", "namespace": "shop"}
    if opted_in:
        meta["annotations"] = {"smictl.io/inject": "enabled"}
    containers = [{"name": "app", "image": "web:1", "ports": [{"containerPort": 8080}]}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {**spec, "containers": containers},
    }


def identity_of(ops: Any) -> str:
    """SMI_PROXY_IDENTITY of the proxy container the patch `ops` adds."""
    for op in ops:
        value = op["value"]
        for c in value if isinstance(value, list) else [value]:
            if isinstance(c, dict) and c.get("name") == PROXY_CONTAINER:
                env = {e["name"]: e.get("value") for e in c["env"]}
                return str(env["SMI_PROXY_IDENTITY"])
    raise AssertionError(f"no proxy container in {ops}")


# --- the injector ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda name: repr(name)[:16])
@pytest.mark.parametrize("field", ["serviceAccountName", "serviceAccount"])
def test_a_service_account_name_kubernetes_refuses_is_refused_with_its_field(
    field: str, name: str
) -> None:
    spec: dict[str, Any] = {field: name}
    decision = decide(pod(**spec), namespace="shop", namespace_labels={}, config=CONFIG)
    assert not decision.inject and decision.patch == ()
    assert decision.refusal == (
        f"not a well-formed Pod: spec.{field}: ServiceAccount name {name!r} {RULE}"
    )
    assert "\n" not in decision.refusal


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_every_name_kubernetes_accepts_is_injected_with_an_identity_that_parses(
    name: str,
) -> None:
    decision = decide(
        pod(serviceAccountName=name), namespace="shop", namespace_labels={}, config=CONFIG
    )
    assert decision.inject, decision.refusal
    identity = identity_of(decision.patch)
    assert identity == f"shop/{name}"
    assert Identity.parse(identity).service_account == name


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda name: repr(name)[:16])
def test_the_refused_names_are_those_identity_parse_refuses(name: str) -> None:
    """One rule for the injector and the proxy, which reads its identity with Identity.parse."""
    with pytest.raises(IdentityError):
        Identity.parse(f"shop/{name}")


def test_the_alias_names_the_identity_only_without_a_service_account_name() -> None:
    def identity(**spec: Any) -> str:
        decision = decide(pod(**spec), namespace="shop", namespace_labels={}, config=CONFIG)
        assert decision.inject, decision.refusal
        return identity_of(decision.patch)

    assert identity(serviceAccount="web") == "shop/web"
    assert identity(serviceAccountName="", serviceAccount="web") == "shop/web"
    # Beside a serviceAccountName the API server drops the alias: it is neither read nor checked.
    assert identity(serviceAccountName="api", serviceAccount="Bad_SA") == "shop/api"
    assert identity() == "shop/default"


def test_an_alias_that_is_not_text_is_refused_rather_than_read_as_absent() -> None:
    """`serviceAccount: 5` used to give the pod the `default` identity."""
    decision = decide(pod(serviceAccount=5), namespace="shop", namespace_labels={}, config=CONFIG)
    assert decision.refusal == "not a well-formed Pod: spec.serviceAccount: not text"


# --- /mutate -----------------------------------------------------------------------------------


def mutate(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/mutate", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    response: dict[str, Any] = r.get_json()["response"]
    assert response["uid"] == body["request"]["uid"]
    return response


@pytest.mark.parametrize("opted_in", [True, False], ids=["opted-in", "not-opted-in"])
def test_mutate_refuses_a_bad_service_account_name_with_422_and_no_patch(
    client: FlaskClient, make_review: Review, opted_in: bool
) -> None:
    body = make_review(pod(opted_in=opted_in, serviceAccountName="Bad_SA"))
    response = mutate(client, body)
    assert response["allowed"] is False and "patch" not in response
    assert response["status"]["code"] == 422
    assert response["status"]["message"] == (
        "smictl cannot inject its proxy into this pod: not a well-formed Pod: "
        f"spec.serviceAccountName: ServiceAccount name 'Bad_SA' {RULE}"
    )


def test_mutate_injects_a_good_name_with_its_identity(
    client: FlaskClient, make_review: Review
) -> None:
    response = mutate(client, make_review(pod(serviceAccountName="web.v1")))
    assert response["allowed"] is True
    assert identity_of(json.loads(base64.b64decode(response["patch"]))) == "shop/web.v1"


# --- smictl inject -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_webhook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("SMI_WEBHOOK_")]:
        monkeypatch.delenv(name)


def inject(capsys: Capsys, *argv: str) -> tuple[int, str, list[str]]:
    """(exit code, standard output, standard error lines) of `smictl inject ARGV`."""
    try:
        code = main(["inject", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def deployment(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {**spec, "containers": [{"name": "app", "image": "web:1"}]},
            },
        },
    }


def test_inject_fails_the_run_at_the_bad_names_line_with_nothing_printed(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    legacy = {**pod(serviceAccount="Web_1"), "metadata": {"name": "debug", "namespace": "shop"}}
    docs = [
        deployment("good", serviceAccountName="web"),
        deployment("api", serviceAccountName="Bad_SA"),
        legacy,
    ]
    manifest = tmp_path / "in.yaml"
    manifest.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    text = manifest.read_text().splitlines()
    bad_line = text.index("      serviceAccountName: Bad_SA") + 1
    legacy_line = text.index("  serviceAccount: Web_1") + 1

    code, out, err = inject(capsys, "-f", str(manifest), "--mesh-ca-cert", str(ca_files[0]))

    assert (code, out) == (1, "")
    assert err == [
        f"{manifest}:{bad_line}: spec.template.spec.serviceAccountName: deployment/api: not a "
        f"well-formed Pod: ServiceAccount name 'Bad_SA' {RULE} (SMI7011)",
        f"{manifest}:{legacy_line}: spec.serviceAccount: pod/debug: not a well-formed Pod: "
        f"ServiceAccount name 'Web_1' {RULE} (SMI7011)",
    ]


def test_inject_still_injects_good_names_and_the_alias(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    docs = [
        deployment("a", serviceAccountName="web.v1"),
        deployment("b", serviceAccount="api"),
        deployment("c", serviceAccountName="api", serviceAccount="Ignored_Alias"),
    ]
    manifest = tmp_path / "in.yaml"
    manifest.write_text(yaml.safe_dump_all(docs, sort_keys=False))

    code, out, err = inject(capsys, "-f", str(manifest), "--mesh-ca-cert", str(ca_files[0]))

    assert code == 0, err
    identities = []
    for doc in yaml.safe_load_all(out):
        spec = doc["spec"]["template"]["spec"]
        [proxy] = [c for c in spec["initContainers"] if c["name"] == PROXY_CONTAINER]
        identities.append({e["name"]: e.get("value") for e in proxy["env"]}["SMI_PROXY_IDENTITY"])
    assert identities == ["shop/web.v1", "shop/api", "shop/api"]
    assert err == ["injected 3, skipped 0"]

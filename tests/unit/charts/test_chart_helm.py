"""`helm lint` and `helm template` of the chart, when helm is on the PATH (it cannot be installed
on our CI machines; these tests skip there with the reason). Every rendered object is checked:
built-in kinds through the kubernetes client's models, SMI kinds against our CRDs, cert-manager
kinds against their v1 fields; then what the objects say is checked against the control plane
that will read them (webhook.settings, `smictl serve`'s flags, smi.store's watch list)."""

from __future__ import annotations

import argparse
import base64
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from chart_support import (
    CHART,
    client_problem,
    helm,
    helm_run,
    load_crds,
    load_module,
    render,
    served_schemas,
    strict_schema,
)

pytestmark = pytest.mark.skipif(
    helm() is None, reason="helm is not on PATH (not installable on these machines)"
)

JOB = load_module(CHART / "files" / "certs_job.py", "certs_job")
NS = "smictl-system"
CERT_MANAGER_KINDS = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}
_DURATION = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(h|m|s))+$"}
_ISSUER_REF = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "kind": {"enum": ["Issuer", "ClusterIssuer"]},
        "group": {"const": "cert-manager.io"},
    },
}
# The cert-manager.io/v1 fields the chart uses (cert-manager's API reference), strict.
CERT_MANAGER_SPECS = {
    "Issuer": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "selfSigned": {"type": "object", "additionalProperties": False},
            "ca": {
                "type": "object",
                "additionalProperties": False,
                "required": ["secretName"],
                "properties": {"secretName": {"type": "string"}},
            },
        },
        "minProperties": 1,
        "maxProperties": 1,
    },
    "Certificate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["secretName", "issuerRef"],
        "properties": {
            "secretName": {"type": "string"},
            "issuerRef": _ISSUER_REF,
            "isCA": {"type": "boolean"},
            "commonName": {"type": "string", "maxLength": 64},
            "dnsNames": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "duration": _DURATION,
            "renewBefore": _DURATION,
            "usages": {
                "type": "array",
                "items": {
                    "enum": [
                        "server auth",
                        "client auth",
                        "digital signature",
                        "key encipherment",
                        "cert sign",
                    ]
                },
            },
            "privateKey": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                    "size": {"type": "integer"},
                    "encoding": {"enum": ["PKCS1", "PKCS8"]},
                    "rotationPolicy": {"enum": ["Never", "Always"]},
                },
            },
        },
    },
}


def _values_file(tmp_path: Path, name: str, values: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return str(path)


SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "cert-manager": {"certificates": {"provider": "cert-manager"}},
    "demo": yaml.safe_load((CHART / "values-demo.yaml").read_text(encoding="utf-8")),
    "configmap-policies": {
        "policies": {
            "shippedFrom": "configmap",
            "user": {"team.rego": "package team\n"},
        }
    },
    "minimal": {
        "fullnameOverride": "mesh",
        "controlPlane": {"replicaCount": 1, "antiAffinity": "hard"},
        "webhook": {"injector": {"enabled": False}},
        "certificates": {
            "meshCA": {"existingSecret": "corp-mesh-ca"},
            "job": {"rotation": {"enabled": False}},
        },
        "policies": {"userConfigMap": "team-policies"},
    },
    # Memory sized from a raised parking cap, with the limit set by hand (_resources.tpl).
    "large-fleet": {
        "controlPlane": {
            "workers": 4,
            "maxParkedPolls": 20000,
            "resources": {"limits": {"memory": "4Gi"}},
        }
    },
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("values")
    return {
        name: render("-f", _values_file(tmp, f"{name}.yaml", values))
        for name, values in SCENARIOS.items()
    }


def _objects(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in _objects(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} rendered"
    return found[0]


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


# --- helm lint --------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_helm_lint_strict(scenario: str, tmp_path: Path) -> None:
    values = _values_file(tmp_path, "v.yaml", SCENARIOS[scenario])
    done = helm_run("lint", str(CHART), "--strict", "-f", values)
    assert done.returncode == 0, done.stdout + done.stderr


def test_helm_refuses_values_outside_the_schema(tmp_path: Path) -> None:
    values = _values_file(tmp_path, "v.yaml", {"mesh": {"mode": "enforce"}})
    done = helm_run("template", "x", str(CHART), "-f", values, "--kube-version", "1.29.0")
    assert done.returncode != 0
    assert "mode" in done.stderr


# --- every rendered object is a valid object of its kind --------------------------------------


def _all_rendered(
    rendered: dict[str, list[dict[str, Any]]],
) -> Iterator[tuple[str, dict[str, Any]]]:
    for scenario, docs in rendered.items():
        for doc in docs:
            yield scenario, doc


def test_every_rendered_object_is_valid(rendered: dict[str, list[dict[str, Any]]]) -> None:
    smi = served_schemas()
    checked = 0
    for scenario, doc in _all_rendered(rendered):
        where = f"{scenario}: {doc['kind']} {doc['metadata']['name']}"
        key = (doc["apiVersion"], doc["kind"])
        if key in smi:
            errors = list(jsonschema.Draft7Validator(strict_schema(smi[key])).iter_errors(doc))
            assert errors == [], (where, [e.message for e in errors])
        elif key in CERT_MANAGER_KINDS:
            jsonschema.validate(doc["spec"], CERT_MANAGER_SPECS[doc["kind"]])
        else:
            assert client_problem(doc) is None, (where, client_problem(doc))
        checked += 1
    assert checked > 100


def test_round_trip_catches_a_misspelt_field(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = _one(rendered["default"], "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    assert client_problem(broken) == "changed by the round trip (an unknown or misplaced field)"
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8443"
    assert "refused by the model" in (client_problem(broken) or "")
    del broken["spec"]["selector"]
    assert "refused by the model" in (client_problem(broken) or "")


def test_namespaced_objects_are_in_the_release_namespace(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    demo_ns = SCENARIOS["demo"]["demo"]["namespace"]
    for scenario, doc in _all_rendered(rendered):
        ns = doc["metadata"].get("namespace")
        if doc["kind"] in {
            "ClusterRole",
            "ClusterRoleBinding",
            "Namespace",
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        }:
            assert ns is None, (scenario, doc["kind"])
        else:
            assert ns in {NS, demo_ns}, (scenario, doc["kind"], doc["metadata"]["name"])


# --- the control plane ------------------------------------------------------------------------


def test_control_plane_deployment_is_hardened(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployment = _one(rendered["default"], "Deployment", "smictl")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "https",
        "scheme": "HTTPS",
    }
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "https",
        "scheme": "HTTPS",
    }
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        anti[0]["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == spec["selector"]["matchLabels"]
    )
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/smictl/tls"]]["secret"]["secretName"] == "smictl-webhook-tls"
    assert volumes[mounts["/etc/smictl/mesh-ca"]]["secret"]["secretName"] == "smictl-mesh-ca"
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_pdb_only_with_more_than_one_replica(rendered: dict[str, list[dict[str, Any]]]) -> None:
    pdb = _one(rendered["default"], "PodDisruptionBudget")
    deployment = _one(rendered["default"], "Deployment", "smictl")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert _objects(rendered["minimal"], "PodDisruptionBudget") == []
    hard = _one(rendered["minimal"], "Deployment")["spec"]["template"]["spec"]["affinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in hard["podAntiAffinity"]


def test_service_selects_the_control_plane_pods(rendered: dict[str, list[dict[str, Any]]]) -> None:
    service = _one(rendered["default"], "Service", "smictl")
    labels = _one(rendered["default"], "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}
    ]


def test_environment_is_what_the_control_plane_reads(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    settings_mod = pytest.importorskip("webhook.settings")
    fields = {settings_mod.PREFIX + f.upper() for f in settings_mod.Settings.__dataclass_fields__}
    for scenario in ("default", "configmap-policies", "minimal"):
        env = _env(_one(rendered[scenario], "Deployment"))
        unknown = {k for k in env if k.startswith("SMI_WEBHOOK_")} - fields
        if scenario == "configmap-policies":
            # Waits for the control plane to honour it (docs/helm.md, "Policies").
            unknown.discard("SMI_WEBHOOK_SHIPPED_POLICIES")
        assert unknown == set(), scenario
    settings = settings_mod.Settings.from_env(_env(_one(rendered["default"], "Deployment")))
    assert settings.bind == "0.0.0.0:8443"
    assert settings.mode == "deny"
    assert settings.service_account == "smictl-system/smictl"
    assert settings.control_plane_url == "https://smictl.smictl-system.svc:443"
    assert settings.excluded_namespaces == ("kube-system", NS, "kube-public", "kube-node-lease")
    assert settings.policies == ()
    assert str(settings.cert_file) == "/etc/smictl/tls/tls.crt"
    assert str(settings.mesh_ca_key_file) == "/etc/smictl/mesh-ca/tls.key"


def test_container_command_is_a_valid_smictl_serve(
    rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = pytest.importorskip("webhook.cli")
    deployment = _one(rendered["default"], "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["smictl", "serve"]
    for name, value in _env(deployment).items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser(prog="smictl")
    cli.register_serve(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", *container["args"]])
    settings = cli.settings_from_args(args)
    assert settings.kubernetes
    assert settings.mode == "deny"


def test_rbac_is_exactly_what_the_kubernetes_store_watches(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    store = pytest.importorskip("smi.store.kubernetes")
    role = _one(rendered["default"], "ClusterRole", "smictl")
    granted = {
        (group, resource, tuple(rule["verbs"]))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    watched = {(w.group, w.plural, ("list", "watch")) for w in store.WATCHED}
    assert granted == watched | {("authentication.k8s.io", "tokenreviews", ("create",))}
    binding = _one(rendered["default"], "ClusterRoleBinding", "smictl")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "smictl", "namespace": NS}]
    assert all("resourceNames" not in r and "*" not in r["verbs"] for r in role["rules"])


# --- webhooks ---------------------------------------------------------------------------------


def test_webhooks_are_safe_by_default(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["default"]
    validating = _one(docs, "ValidatingWebhookConfiguration", "smictl")
    mutating = _one(docs, "MutatingWebhookConfiguration", "smictl-injector")
    hooks = validating["webhooks"] + mutating["webhooks"]
    assert [h["name"] for h in hooks] == [
        "validate.smictl.io",
        "namespace.inject.smictl.io",
        "pod.inject.smictl.io",
    ]
    for hook in hooks:
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["sideEffects"] == "None"
        assert hook["timeoutSeconds"] == 3
        assert hook["failurePolicy"] == "Fail"
        service = hook["clientConfig"]["service"]
        assert (service["namespace"], service["name"], service["port"]) == (NS, "smictl", 443)
        excluded = next(
            e
            for e in hook["namespaceSelector"]["matchExpressions"]
            if e["key"] == "kubernetes.io/metadata.name"
        )
        assert excluded["operator"] == "NotIn"
        assert {"kube-system", NS} <= set(excluded["values"])
        assert hook["matchConditions"], "matchConditions cut the calls the webhook would skip"
    assert validating["webhooks"][0]["clientConfig"]["service"]["path"] == "/validate"
    assert {h["name"]: h["clientConfig"]["service"]["path"] for h in mutating["webhooks"]} == {
        "namespace.inject.smictl.io": "/mutate/namespace-opted-in",
        "pod.inject.smictl.io": "/mutate",
    }
    rules = validating["webhooks"][0]["rules"]
    assert {r for rule in rules for r in rule["resources"]} == {
        "traffictargets",
        "httproutegroups",
        "tcproutes",
        "udproutes",
        "trafficsplits",
    }
    assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in rules)


def test_injector_entries_split_opt_in_between_namespace_label_and_pod_annotation(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    mutating = _one(rendered["default"], "MutatingWebhookConfiguration")
    by_name = {h["name"]: h for h in mutating["webhooks"]}

    def label_rule(hook: dict[str, Any]) -> dict[str, Any]:
        return next(
            e
            for e in hook["namespaceSelector"]["matchExpressions"]
            if e["key"] == "smictl.io/inject"
        )

    assert label_rule(by_name["namespace.inject.smictl.io"]) == {
        "key": "smictl.io/inject",
        "operator": "In",
        "values": ["enabled"],
    }
    assert label_rule(by_name["pod.inject.smictl.io"])["operator"] == "NotIn"
    conditions = {
        name: {c["name"]: c["expression"] for c in hook["matchConditions"]}
        for name, hook in by_name.items()
    }
    assert "== 'disabled'" in conditions["namespace.inject.smictl.io"]["not-disabled-by-annotation"]
    assert "== 'enabled'" in conditions["pod.inject.smictl.io"]["enabled-by-annotation"]
    assert all("hostNetwork" in c["not-host-network"] for c in conditions.values())
    assert _objects(rendered["minimal"], "MutatingWebhookConfiguration") == []


def test_validation_skips_the_control_plane_itself(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    hook = _one(rendered["default"], "ValidatingWebhookConfiguration")["webhooks"][0]
    expressions = {c["name"]: c["expression"] for c in hook["matchConditions"]}
    assert expressions["not-the-control-plane"] == (
        "request.userInfo.username != 'system:serviceaccount:smictl-system:smictl'"
    )


# --- certificates -----------------------------------------------------------------------------


def _hook(doc: dict[str, Any]) -> tuple[str, int]:
    annotations = doc["metadata"].get("annotations") or {}
    return annotations.get("helm.sh/hook", ""), int(annotations.get("helm.sh/hook-weight", "0"))


def test_certificate_jobs_run_in_order(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["demo"]
    prepare = _one(docs, "Job", "smictl-certs-prepare")
    inject = _one(docs, "Job", "smictl-certs-inject")
    assert _hook(prepare) == ("pre-install,pre-upgrade", 0)
    assert _hook(inject) == ("post-install,post-upgrade", 0)
    for kind in (
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
    ):
        events, weight = _hook(_one(docs, kind, "smictl-certs"))
        assert set(events.split(",")) == {
            "pre-install",
            "pre-upgrade",
            "post-install",
            "post-upgrade",
        }
        assert weight < 0, "the Jobs' ServiceAccount and RBAC exist before the Jobs"
    smi = [d for d in docs if d["apiVersion"].partition("/")[0].endswith("smi-spec.io")]
    assert smi and all(
        _hook(d)[0] == "post-install,post-upgrade" and _hook(d)[1] > 0 for d in smi
    ), "demo SMI objects are admitted only after the webhook is trusted"


def test_certificate_job_arguments_name_what_the_chart_renders(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for scenario in ("default", "minimal"):
        docs = rendered[scenario]
        fullname = "mesh" if scenario == "minimal" else "smictl"
        job = _one(docs, "Job", f"{fullname}-certs-prepare")
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["python3", "/scripts/certs_job.py", "prepare"]
        target = JOB.target_from(JOB.parse_args(["prepare", *container["args"]]))
        _one(docs, "Service", target.service)
        _one(docs, "ValidatingWebhookConfiguration", target.validating_webhook)
        if target.mutating_webhook:
            _one(docs, "MutatingWebhookConfiguration", target.mutating_webhook)
        else:
            assert _objects(docs, "MutatingWebhookConfiguration") == []
        assert set(target.crds) == {
            n for n, c in load_crds().items() if c["spec"]["conversion"]["strategy"] == "Webhook"
        }
        assert f"{target.service}.{NS}.svc" in target.dns
        volumes = _one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
        secrets = {v["secret"]["secretName"] for v in volumes if "secret" in v}
        assert target.serving_secret in secrets
        if scenario == "minimal":
            assert target.mesh_ca_secret is None and "corp-mesh-ca" in secrets
        else:
            assert target.mesh_ca_secret in secrets
        # The Job may touch exactly the Secrets it names, and only our webhooks and CRDs.
        role = _one(docs, "Role", f"{fullname}-certs")
        named = next(r for r in role["rules"] if "resourceNames" in r)
        assert set(named["resourceNames"]) == {target.serving_secret, target.ca_secret} | (
            {target.mesh_ca_secret} if target.mesh_ca_secret else set()
        )


def test_certificate_script_is_shipped_verbatim(rendered: dict[str, list[dict[str, Any]]]) -> None:
    script = (CHART / "files" / "certs_job.py").read_text(encoding="utf-8")
    for name in ("smictl-certs", "smictl-certs-rotation"):
        assert _one(rendered["default"], "ConfigMap", name)["data"]["certs_job.py"] == script


def test_rotation_cronjob(rendered: dict[str, list[dict[str, Any]]]) -> None:
    cron = _one(rendered["default"], "CronJob", "smictl-certs-rotation")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == "rotate"
    assert _objects(rendered["minimal"], "CronJob") == []
    assert _objects(rendered["cert-manager"], "CronJob") == []


def test_cert_manager_mode(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["cert-manager"]
    serving = _one(docs, "Certificate", "smictl-webhook")
    assert serving["spec"]["secretName"] == "smictl-webhook-tls"
    assert f"smictl.{NS}.svc" in serving["spec"]["dnsNames"]
    mesh = _one(docs, "Certificate", "smictl-mesh-ca")
    assert mesh["spec"]["isCA"] is True and mesh["spec"]["secretName"] == "smictl-mesh-ca"
    assert mesh["spec"]["privateKey"]["rotationPolicy"] == "Never"
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        annotation = _one(docs, kind)["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        assert annotation == f"{NS}/smictl-webhook"
    # No Secret-writing Job without the job provider, only the CRD-pointing one.
    assert [j["metadata"]["name"] for j in _objects(docs, "Job")] == ["smictl-certs-inject"]
    assert _objects(docs, "Role") == []


def test_crd_placeholders_match_the_default_install(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    service = _one(rendered["default"], "Service")
    certificate = _one(rendered["cert-manager"], "Certificate", "smictl-webhook")
    for crd in load_crds().values():
        conversion = crd["spec"]["conversion"]
        if conversion["strategy"] != "Webhook":
            continue
        ref = conversion["webhook"]["clientConfig"]["service"]
        assert (ref["namespace"], ref["name"]) == (NS, service["metadata"]["name"])
        assert crd["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
            f"{NS}/{certificate['metadata']['name']}"
        )


# --- policies and the demo --------------------------------------------------------------------


def test_policies_from_the_configmap(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["configmap-policies"]
    configmap = _one(docs, "ConfigMap", "smictl-policies")
    deployment = _one(docs, "Deployment")
    volume = next(
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "policies"
    )
    items = {i["key"]: i["path"] for i in volume["configMap"]["items"]}
    assert set(items) == set(configmap["data"])
    for key, path in items.items():
        assert configmap["data"][key] == (CHART / "files" / "policies" / path).read_text(
            encoding="utf-8"
        )
    env = _env(deployment)
    assert env["SMI_WEBHOOK_POLICIES"] == "/etc/smictl/policies:/etc/smictl/user-policies"
    assert env["SMI_WEBHOOK_SHIPPED_POLICIES"] == "false"
    assert _one(docs, "ConfigMap", "smictl-user-policies")["data"] == {
        "team.rego": "package team\n"
    }
    # By default the control plane's own copy is used and nothing is mounted twice.
    default_env = _env(_one(rendered["default"], "Deployment"))
    assert default_env["SMI_WEBHOOK_POLICIES"] == ""
    assert not [
        c for c in _objects(rendered["default"], "ConfigMap") if "policies" in c["metadata"]["name"]
    ]
    minimal_env = _env(_one(rendered["minimal"], "Deployment"))
    assert minimal_env["SMI_WEBHOOK_POLICIES"] == "/etc/smictl/user-policies"


def test_demo_graph(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["demo"]
    namespace = _one(docs, "Namespace", "smictl-demo")
    assert namespace["metadata"]["labels"]["smictl.io/inject"] == "enabled"
    deployments = {d["metadata"]["name"] for d in _objects(docs, "Deployment")}
    assert deployments == {"smictl", "frontend", "catalog-v1", "catalog-v2", "payments", "intruder"}
    split = _one(docs, "TrafficSplit", "catalog")
    assert [b["weight"] for b in split["spec"]["backends"]] == [90, 10]
    targets = {t["metadata"]["name"]: t for t in _objects(docs, "TrafficTarget")}
    sources = {s["name"] for t in targets.values() for s in t["spec"]["sources"]}
    assert "intruder" not in sources, "the intruder is the one the mesh refuses"
    apps = _one(docs, "ConfigMap", "demo-apps")["data"]
    for name in ("server.py", "client.py"):
        assert apps[name] == (CHART / "files" / "demo" / name).read_text(encoding="utf-8")
    assert _one(docs, "Deployment", "smictl")["spec"]["replicas"] == 1


def test_demo_clients_call_through_the_injected_proxy(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    injection = pytest.importorskip("webhook.injection")
    for name in ("frontend", "intruder"):
        env = _env(_one(rendered["demo"], "Deployment", name))
        assert env["http_proxy"] == f"http://127.0.0.1:{injection.OUTBOUND_PORT}"


def test_demo_services_select_their_deployments(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["demo"]
    pods = [
        d["spec"]["template"]["metadata"]["labels"]
        for d in _objects(docs, "Deployment")
        if d["metadata"]["namespace"] == "smictl-demo"
    ]
    for service in _objects(docs, "Service"):
        if service["metadata"]["namespace"] != "smictl-demo":
            continue
        selector = service["spec"]["selector"].items()
        assert any(selector <= labels.items() for labels in pods), service["metadata"]["name"]


def test_user_policy_configmap_data_is_base64_free(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    # Rego goes into `data` as text (readable with kubectl), never base64-encoded binaryData.
    configmap = _one(rendered["configmap-policies"], "ConfigMap", "smictl-user-policies")
    assert "binaryData" not in configmap
    assert base64.b64encode(b"package team\n").decode() not in str(configmap)


def _notes(tmp_path: Path, *args: str) -> str:
    """NOTES.txt as `helm install` would print it: helm template skips NOTES, so render a copy
    of the chart where the notes are an ordinary (YAML-wrapped) template."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text(encoding="utf-8")
    (chart / "templates" / "NOTES.txt").unlink()
    wrapped = "notes: |\n" + "\n".join(f"  {line}" for line in notes.splitlines())
    (chart / "templates" / "notes.yaml").write_text(wrapped + "\n", encoding="utf-8")
    done = helm_run(
        "template",
        "smictl",
        str(chart),
        "--namespace",
        NS,
        "--kube-version",
        "1.29.0",
        "--show-only",
        "templates/notes.yaml",
        *args,
    )
    assert done.returncode == 0, done.stderr
    return str(yaml.safe_load(done.stdout)["notes"])


def test_notes_warn_about_permissive_mode_and_show_the_demo(tmp_path: Path) -> None:
    notes = _notes(tmp_path, "--set", "mesh.mode=permissive")
    assert "WARNING: permissive mode allows every call" in notes
    assert "kubectl -n smictl-system rollout status deploy/smictl" in notes
    assert "smictl-demo" not in notes
    demo = _notes(tmp_path / "demo", "-f", str(CHART / "values-demo.yaml"))
    assert "Mode: deny\n" in demo
    assert "catalog split 90/10 (v1/v2)" in demo

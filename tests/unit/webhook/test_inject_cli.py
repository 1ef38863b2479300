"""`smictl inject`: the webhook's injection, offline. A pod template from its output is the pod
the webhook's JSON Patch makes (compared with a real `/mutate` answer, in both placements);
everything else in the input comes back as it was, in order; a pod the injector refuses fails
the run with nothing printed; bad flag values are usage errors."""

from __future__ import annotations

import base64
import copy
import io
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from smi.cli import main
from smi.codes import CODES
from smi.pki import CertificateAuthority
from smi.policy.policyset import PolicySet
from webhook.admission import NAMESPACE_OPTED_IN_PATH
from webhook.app import create_app
from webhook.injection import PROXY_CONTAINER
from webhook.settings import Settings

Capsys = pytest.CaptureFixture[str]
IMAGE = "registry.local/smictl:test"
URL = "https://smictl.smictl-system.svc:8443"


@pytest.fixture(autouse=True)
def _no_webhook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("SMI_WEBHOOK_")]:
        monkeypatch.delenv(name)


def run(capsys: Capsys, *argv: str) -> tuple[int, str, list[str]]:
    """(exit code, standard output, standard error lines) of `smictl inject ARGV`."""
    try:
        code = main(["inject", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def template(*, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """The pod template of a Deployment `web`."""
    meta: dict[str, Any] = {"labels": {"app": "web"}}
    if annotations is not None:
        meta["annotations"] = annotations
    return {
        "metadata": meta,
        "spec": {
            "serviceAccountName": "web",
            "containers": [
                {
                    "name": "app",
                    "image": "registry.local/web:1",
                    "ports": [{"containerPort": 8080}],
                }
            ],
            **spec,
        },
    }


def deployment(
    name: str = "web", *, namespace: str | None = "shop", pod: dict[str, Any] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": pod or template()},
    }


def write(path: Path, *docs: Any) -> str:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


def proxy_of(pod: dict[str, Any]) -> dict[str, Any]:
    spec = pod["spec"]
    found = [c for c in spec.get("initContainers", []) + spec["containers"]]
    return next(c for c in found if c["name"] == PROXY_CONTAINER)


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in proxy_of(pod)["env"]}


# --- the same pod as the webhook ----------------------------------------------------------------


@pytest.fixture
def serving_ca(tmp_path: Path) -> Path:
    path = tmp_path / "serving-ca.crt"
    path.write_bytes(CertificateAuthority.create().cert_pem())
    return path


def webhook_patch(
    settings: Settings, policy_set: PolicySet, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """The JSON Patch the namespace-selected webhook answers `body` with (offline, every
    namespace counts as opted in)."""
    app = create_app(settings, policies=policy_set)
    try:
        answer = app.test_client().post(NAMESPACE_OPTED_IN_PATH, json=body).get_json()
    finally:
        app.extensions["smictl"].store.close()
    patch: list[dict[str, Any]] = json.loads(base64.b64decode(answer["response"]["patch"]))
    return patch


TEMPLATES = {
    "minimal": template(),
    # Lists and maps that exist already: the patch appends (`/-`, escaped keys) instead.
    "busy": template(
        annotations={"team": "shop", "smictl.io/proxy-wait-before-exit-seconds": "5"},
        initContainers=[{"name": "migrate", "image": "registry.local/migrate:1"}],
        volumes=[{"name": "data", "emptyDir": {}}],
        terminationGracePeriodSeconds=45,
    ),
}


@pytest.mark.parametrize("native", [True, False], ids=["native-sidecar", "regular-container"])
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_the_output_is_the_pod_the_webhook_patch_makes(
    *,
    settings: Settings,
    policy_set: PolicySet,
    ca_files: tuple[Path, Path],
    serving_ca: Path,
    tmp_path: Path,
    capsys: Capsys,
    make_review: Callable[..., dict[str, Any]],
    native: bool,
    name: str,
) -> None:
    pod_template = TEMPLATES[name]
    # The pod the ReplicaSet creates from the template, as the API server sends it to /mutate.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**copy.deepcopy(pod_template["metadata"]), "generateName": "web-6b7c9-"},
        "spec": copy.deepcopy(pod_template["spec"]),
    }
    served = replace(settings, serving_ca_file=serving_ca, native_sidecars=native)
    patch = webhook_patch(served, policy_set, make_review(pod, namespace="shop"))
    expected = jsonpatch.apply_patch(pod, patch)
    capsys.readouterr()  # the control plane's own log lines

    flags = ["--mesh-ca-cert", str(ca_files[0]), "--serving-ca", str(serving_ca)]
    flags += ["--proxy-image", served.proxy_image, "--control-plane-url", served.control_plane_url]
    if not native:
        flags.append("--no-native-sidecars")
    manifest = write(tmp_path / "web.yaml", deployment(pod=pod_template))
    code, out, err = run(capsys, "-f", manifest, *flags)

    assert (code, err) == (0, ["injected 1, skipped 0"])
    injected = yaml.safe_load(out)["spec"]["template"]
    assert injected["spec"] == expected["spec"]
    assert injected["metadata"]["annotations"] == expected["metadata"]["annotations"]
    placed = injected["spec"]["initContainers" if native else "containers"][0]
    assert placed["name"] == PROXY_CONTAINER
    assert env_of(injected)["SMI_PROXY_CONTROL_PLANE_CA_PEM"] == serving_ca.read_text()


def test_injecting_the_output_again_changes_nothing(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    manifest = write(tmp_path / "in.yaml", deployment(), deployment("api"))
    code, first, _ = run(capsys, "-f", manifest, "--mesh-ca-cert", str(ca_files[0]))
    assert code == 0 and first.count(f"name: {PROXY_CONTAINER}") == 2
    again = tmp_path / "out.yaml"
    again.write_text(first)
    code, second, err = run(capsys, "-f", str(again), "--mesh-ca-cert", str(ca_files[0]))
    assert (code, second) == (0, first)
    starts = [i + 2 for i, line in enumerate(first.splitlines()) if line == "---"]
    assert err == [
        f"{again}:{starts[0]}: deployment/web skipped: already injected",
        f"{again}:{starts[1]}: deployment/api skipped: already injected",
        "injected 0, skipped 2",
    ]


# --- what is injected, what passes through ------------------------------------------------------


def test_every_workload_kind_and_list_items_are_injected_in_order(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}}
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template()}}},
    }
    bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug"}, **template()}
    statefulset = {**deployment("db"), "kind": "StatefulSet"}
    listed = {"apiVersion": "v1", "kind": "List", "items": [statefulset, service, bare]}
    foreign = {**deployment("other"), "apiVersion": "example.com/v1"}  # a CRD's Deployment
    docs = [deployment(), service, cronjob, listed, foreign]
    manifest = write(tmp_path / "all.yaml", *docs)

    code, out, err = run(capsys, "-f", manifest, "--mesh-ca-cert", str(ca_files[0]))

    assert (code, err) == (0, ["injected 4, skipped 0"])
    web, svc, job, got_list, crd = yaml.safe_load_all(out)
    assert [d["kind"] for d in (web, svc, job, got_list, crd)] == [
        "Deployment", "Service", "CronJob", "List", "Deployment"
    ]  # fmt: skip
    assert svc == service and crd == foreign
    assert proxy_of(web["spec"]["template"])["image"] == "ghcr.io/smictl/smictl:0.1.0"
    assert proxy_of(job["spec"]["jobTemplate"]["spec"]["template"])
    db, same_service, debug = got_list["items"]
    assert env_of(db["spec"]["template"])["SMI_PROXY_IDENTITY"] == "shop/web"
    assert same_service == service
    assert env_of(debug)["SMI_PROXY_IDENTITY"] == "default/web"


def test_json_in_gives_json_out_and_stdin_is_read(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = json.dumps(deployment(), indent=4)
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, out, err = run(capsys, "-f", "-", "--mesh-ca-cert", str(ca_files[0]))
    assert (code, err) == (0, ["injected 1, skipped 0"])
    from_stdin = json.loads(out)  # JSON, not YAML
    assert proxy_of(from_stdin["spec"]["template"])["name"] == PROXY_CONTAINER
    path = tmp_path / "web.json"
    path.write_text(text)
    code, out, _ = run(capsys, "-f", str(path), "--mesh-ca-cert", str(ca_files[0]))
    assert code == 0 and json.loads(out) == from_stdin
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(deployment())))
    code, out, _ = run(capsys, "-f", "-", "--mesh-ca-cert", str(ca_files[0]))
    assert code == 0 and out.startswith("apiVersion: apps/v1\n")
    assert yaml.safe_load(out) == from_stdin


def test_opted_out_host_network_and_excluded_pods_are_skipped_and_said_so(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    opted_out = deployment("quiet", pod=template(annotations={"smictl.io/inject": "disabled"}))
    host = deployment("node-agent", pod=template(hostNetwork=True))
    system = deployment("dns", namespace="kube-system")
    docs = [opted_out, host, system, deployment()]
    manifest = write(tmp_path / "in.yaml", *docs)

    code, out, err = run(capsys, "-f", manifest, "--mesh-ca-cert", str(ca_files[0]))

    assert code == 0
    assert list(yaml.safe_load_all(out))[:3] == docs[:3]
    assert [line.split(": ", 1)[1] for line in err[:3]] == [
        "deployment/quiet skipped: pod annotation smictl.io/inject=disabled",
        "deployment/node-agent skipped: host-network pods are not injected",
        "deployment/dns skipped: namespace kube-system is excluded",
    ]
    assert err[3:] == ["injected 1, skipped 3"]


def test_the_namespace_of_the_identity_is_the_objects_else_the_flag(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    legacy = template()
    legacy["spec"]["serviceAccount"] = legacy["spec"].pop("serviceAccountName")
    docs = [deployment(namespace=None), deployment("api", namespace="shop", pod=legacy)]
    manifest = write(tmp_path / "in.yaml", *docs)
    code, out, _ = run(capsys, "-f", manifest, "-n", "team", "--mesh-ca-cert", str(ca_files[0]))
    assert code == 0
    identities = [
        env_of(d["spec"]["template"])["SMI_PROXY_IDENTITY"] for d in yaml.safe_load_all(out)
    ]
    # The API server copies the deprecated serviceAccount into serviceAccountName.
    assert identities == ["team/web", "shop/web"]


def test_an_objects_namespace_kubernetes_refuses_fails_the_run_at_its_line(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    """The namespace goes into the proxy's identity: one that is not a DNS-1123 label (as `-n`
    must be), or not text (which used to be read as absent, so `-n` stood in unseen), is
    refused where it is written, and nothing is printed."""
    listed_pod = {"apiVersion": "v1", "kind": "Pod", **template()}
    listed_pod["metadata"].update(name="debug", namespace=5)
    docs = [
        deployment(),
        deployment("api", namespace="Bad_NS"),
        {"apiVersion": "v1", "kind": "List", "items": [listed_pod]},
    ]
    manifest = write(tmp_path / "in.yaml", *docs)
    text = Path(manifest).read_text().splitlines()
    bad_line = text.index("  namespace: Bad_NS") + 1
    number_line = text.index("    namespace: 5") + 1

    code, out, err = run(capsys, "-f", manifest, "-n", "team", "--mesh-ca-cert", str(ca_files[0]))

    assert (code, out) == (1, "")
    assert err == [
        f"{manifest}:{bad_line}: metadata.namespace: deployment/api: namespace 'Bad_NS' is not "
        "a DNS-1123 label (lowercase letters, digits and '-', starting and ending "
        "alphanumeric, at most 63 characters) (SMI2006)",
        f"{manifest}:{number_line}: items[0].metadata.namespace: pod/debug: cannot inject the "
        "proxy: the namespace is not text (SMI7011)",
    ]


def test_annotation_warnings_are_reported_and_the_pod_injected(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    asks = deployment(pod=template(annotations={"smictl.io/native-sidecar": "maybe"}))
    manifest = write(tmp_path / "in.yaml", asks)
    code, out, err = run(capsys, "-f", manifest, "--mesh-ca-cert", str(ca_files[0]))
    assert code == 0 and proxy_of(yaml.safe_load(out)["spec"]["template"])
    assert err[0].startswith(f"{manifest}:")
    assert "warning: spec.template: deployment/web: smictl.io/native-sidecar='maybe'" in err[0]
    assert err[0].endswith("(SMI7012)") and "SMI7012" in CODES
    assert err[1] == "injected 1, skipped 0"


def test_stderr_follows_the_documents_order(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    """Skips and warnings are one story about the input, read top to bottom: they used to be
    printed kind by kind, every skip before the first warning."""
    warns = template(annotations={"smictl.io/native-sidecar": "maybe"})
    docs = [
        deployment("first", pod=warns),
        deployment("node-agent", pod=template(hostNetwork=True)),
        deployment("last", pod=copy.deepcopy(warns)),
        deployment("dns", namespace="kube-system"),
    ]
    manifest = write(tmp_path / "in.yaml", *docs)

    code, _, err = run(capsys, "-f", manifest, "--mesh-ca-cert", str(ca_files[0]))

    assert (code, err[-1]) == (0, "injected 2, skipped 2")
    refs = ["deployment/first", "deployment/node-agent", "deployment/last", "deployment/dns"]
    assert [next(r for r in refs if f" {r}" in line) for line in err[:-1]] == refs
    assert ["warning: " in line for line in err[:-1]] == [True, False, True, False]
    lines = [int(line.split(":")[1]) for line in err[:-1]]
    assert lines == sorted(lines)


# --- settings from the environment --------------------------------------------------------------


def test_serves_variables_are_the_defaults(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMI_WEBHOOK_MESH_CA_CERT_FILE", str(ca_files[0]))
    monkeypatch.setenv("SMI_WEBHOOK_PROXY_IMAGE", IMAGE)
    monkeypatch.setenv("SMI_WEBHOOK_CONTROL_PLANE_URL", "https://cp.example:9443")
    monkeypatch.setenv("SMI_WEBHOOK_NATIVE_SIDECARS", "false")
    monkeypatch.setenv("SMI_WEBHOOK_WORKERS", "lots")  # serve's, not inject's business
    manifest = write(tmp_path / "in.yaml", deployment())
    code, out, _ = run(capsys, "-f", manifest)
    assert code == 0
    pod = yaml.safe_load(out)["spec"]["template"]
    proxy = pod["spec"]["containers"][0]
    assert (proxy["name"], proxy["image"]) == (PROXY_CONTAINER, IMAGE)
    assert env_of(pod)["SMI_PROXY_POLICY"] == "https://cp.example:9443/mesh/v1/policy"
    assert env_of(pod)["SMI_PROXY_CA_PEM"] == ca_files[0].read_text()

    monkeypatch.setenv("SMI_WEBHOOK_NATIVE_SIDECARS", "maybe")
    code, out, err = run(capsys, "-f", manifest)
    assert (code, out) == (1, "")
    assert err == ["SMI_WEBHOOK_NATIVE_SIDECARS='maybe': must be true or false (SMI7009)"]


# --- failures: nothing printed ------------------------------------------------------------------


def test_a_refused_pod_fails_the_run_with_nothing_printed(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    clash = template()
    clash["spec"]["containers"][0]["ports"].append({"containerPort": 15006})
    manifest = write(tmp_path / "in.yaml", deployment(), deployment("bad", pod=clash))
    text = Path(manifest).read_text().splitlines()
    port_line = text.index("        - containerPort: 15006") + 1

    code, out, err = run(capsys, "-f", manifest, "--mesh-ca-cert", str(ca_files[0]))

    assert (code, out) == (1, "")
    assert err == [
        f"{manifest}:{port_line}: spec.template.spec.containers[0].ports[1]: deployment/bad: "
        "cannot inject the proxy: port 15006 is the injected proxy's (15001, 15006, 15020) "
        "(SMI7011)"
    ]
    assert "SMI7011" in CODES


def test_a_malformed_pod_template_fails_the_run(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    broken = deployment(pod={"spec": {"containers": "app"}})
    no_template = {**deployment("empty"), "spec": {"replicas": 1}}
    manifest = write(tmp_path / "in.yaml", broken, no_template)
    code, out, err = run(capsys, "-f", manifest, "--mesh-ca-cert", str(ca_files[0]))
    assert (code, out) == (1, "")
    assert [line.split(": ", 1)[1] for line in err] == [
        "spec.template.spec.containers: deployment/web: not a well-formed Pod: not a list of "
        "objects (SMI7011)",
        "spec.template: deployment/empty: no pod template (not an object) (SMI7011)",
    ]


def test_empty_input_is_refused(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n---\n")
    code, out, err = run(capsys, "-f", str(empty), "--mesh-ca-cert", str(ca_files[0]))
    assert (code, out) == (1, "")
    assert err == [
        f"{empty}: no objects: empty or only comments and '---'; nothing to inject (SMI1012)"
    ]


@pytest.mark.parametrize(
    ("flags", "flag", "text"),
    [
        (["--control-plane-url", "smictl:8443"], "--control-plane-url", "not an http(s) URL"),
        (["--proxy-image", " "], "--proxy-image", "no proxy image"),
        (["--trust-domain", ""], "--trust-domain", "SMI7009"),
        (["-n", "Bad_NS"], "-n/--namespace", "DNS-1123"),
        (["--excluded-namespaces", "kube-system,No Such"], "--excluded-namespaces", "'No Such'"),
        (["--mesh-ca-cert", "missing.crt"], "--mesh-ca-cert", "missing.crt: no such file"),
        (["--mesh-ca-cert", "SERVER"], "--mesh-ca-cert", "not a CA certificate"),
        (["--serving-ca", "KEY"], "--serving-ca", "cannot read certificate"),
        (["-f", ""], "-f/--filename", "an empty path"),
    ],
)
def test_bad_flag_values_are_one_line_usage_errors(
    *,
    ca_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: Capsys,
    flags: list[str],
    flag: str,
    text: str,
) -> None:
    ca = CertificateAuthority.create()
    server_cert, _ = ca.issue_server(dns_names=["localhost"], ip_addresses=[])
    (tmp_path / "server.crt").write_bytes(server_cert)
    named = {"SERVER": str(tmp_path / "server.crt"), "KEY": str(ca_files[1])}
    flags = [named.get(f, f) for f in flags]
    manifest = write(tmp_path / "in.yaml", deployment())
    code, out, err = run(capsys, "-f", manifest, "--mesh-ca-cert", str(ca_files[0]), *flags)
    assert (code, out) == (2, "")
    errors = [line for line in err if line.startswith("smictl inject: error:")]
    assert errors == [err[-1]]
    assert f"argument {flag}: " in err[-1] and text in err[-1]


@pytest.mark.parametrize(
    ("mistake", "error"),
    [
        (
            ["--native-sidecars", "maybe"],
            "smictl {command}: error: unrecognized arguments: --native-sidecars maybe",
        ),
        (["-n"], "smictl {command}: error: argument -n/--namespace: expected one argument"),
    ],
    ids=["unknown-flag", "missing-value"],
)
def test_flag_mistakes_read_as_they_do_for_every_command(
    *, ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys, mistake: list[str], error: str
) -> None:
    """Inject's flags go through smictl's shared parser (`smi.cli`), as every command's do:
    a mistake gets the same one error line and exit code as the same mistake to `validate`."""
    manifest = write(tmp_path / "in.yaml", deployment())
    code, out, err = run(capsys, "-f", manifest, "--mesh-ca-cert", str(ca_files[0]), *mistake)
    with pytest.raises(SystemExit) as validate:
        main(["validate", "-f", manifest, *mistake])
    validate_err = capsys.readouterr().err.strip().splitlines()

    assert (code, out, validate.value.code) == (2, "", 2)
    for lines, command in ((err, "inject"), (validate_err, "validate")):
        help_hint = f" (see `smictl {command} --help`)"
        assert lines == [error.format(command=command) + help_hint]


def test_the_mesh_ca_is_required(tmp_path: Path, capsys: Capsys) -> None:
    """A proxy without the mesh CA does not start: no output that would deploy one."""
    manifest = write(tmp_path / "in.yaml", deployment())
    code, out, err = run(capsys, "-f", manifest)
    assert (code, out) == (2, "")
    assert err == [
        "smictl inject: error: the following arguments are required: --mesh-ca-cert"
        " (see `smictl inject --help`)"
    ]

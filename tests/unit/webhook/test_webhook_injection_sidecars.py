"""Where the proxy goes, so that the app never runs without it: a native sidecar (the first init
container, started before everything else and stopped after the app) by default; on clusters
without native sidecars, the first container, holding the app until ready (postStart) and
outliving its shutdown (preStop). Every patch is applied with `jsonpatch` to the pod it was
computed for, and the result read back with the kubernetes client's own models."""

from __future__ import annotations

import argparse
import base64
import copy
import dataclasses
import http.server
import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from flask.testing import FlaskClient
from kubernetes.client import ApiClient, V1Pod

from smi.policy.policyset import PolicySet
from webhook.app import create_app
from webhook.injection import (
    ADMIN_PORT,
    DEFAULT_CONTAINER_KEY,
    INJECTED_KEY,
    PROXY_CONTAINER,
    STARTUP_SECONDS,
    InjectionConfig,
    decide,
    wait_ready_script,
)
from webhook.settings import Settings

Review = Callable[..., dict[str, Any]]
NATIVE = InjectionConfig(image="registry.local/smictl:1", control_plane_url="https://cp:8443")
REGULAR = InjectionConfig(
    image="registry.local/smictl:1", control_plane_url="https://cp:8443", native_sidecars=False
)
OPT_IN = {"smictl.io/inject": "enabled"}
RECORDED_PODS = Path(__file__).with_name("recordings") / "pods-list.json"


def pod(*, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A Pod as kube-apiserver sends it to /mutate: from a ReplicaSet, defaults applied."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-6b7c9-",
            "namespace": "shop",
            "labels": {"app": "web"},
            "annotations": {**OPT_IN, **(annotations or {})},
        },
        "spec": {
            "serviceAccountName": "web",
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "containers": [
                {
                    "name": "app",
                    "image": "registry.local/web:1.4.2",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            **spec,
        },
    }


def as_v1_pod(obj: dict[str, Any]) -> V1Pod:
    result: V1Pod = ApiClient().deserialize(json.dumps(obj), "V1Pod", "application/json")
    return result


def injected(p: dict[str, Any], config: InjectionConfig = NATIVE) -> dict[str, Any]:
    d = decide(p, namespace="shop", namespace_labels={}, config=config)
    assert d.inject, d.reason
    assert all(op["op"] == "add" for op in d.patch)
    out: dict[str, Any] = jsonpatch.apply_patch(p, list(d.patch))
    as_v1_pod(out)
    return out


def names(p: dict[str, Any], key: str) -> list[str]:
    return [c["name"] for c in p["spec"].get(key) or ()]


def pre_stop_seconds(proxy: dict[str, Any]) -> int | None:
    hook = proxy["lifecycle"].get("preStop")
    if hook is None:
        return None
    command = hook["exec"]["command"]
    assert command[:2] == ["python3", "-c"]
    return int(command[2].rpartition("sleep(")[2].rstrip(")"))


# --- native sidecar (default) --------------------------------------------------------------------


def test_by_default_the_proxy_is_a_native_sidecar_the_app_starts_after() -> None:
    out = injected(pod())
    assert names(out, "containers") == ["app"]  # the app's own list is left alone
    assert names(out, "initContainers") == [PROXY_CONTAINER]
    proxy = out["spec"]["initContainers"][0]
    assert proxy["restartPolicy"] == "Always"
    # The kubelet starts the next container only once this probe passed: the proxy is ready.
    assert proxy["startupProbe"]["httpGet"] == {"path": "/ready", "port": ADMIN_PORT}
    assert proxy["startupProbe"]["periodSeconds"] * proxy["startupProbe"]["failureThreshold"] >= 30
    assert "lifecycle" not in proxy  # Kubernetes orders start and stop itself
    assert DEFAULT_CONTAINER_KEY not in out["metadata"]["annotations"]
    model = as_v1_pod(out)
    assert model.spec.init_containers[0].restart_policy == "Always"
    assert model.spec.init_containers[0].startup_probe.http_get.path == "/ready"


def test_the_proxy_starts_before_the_pods_own_init_containers() -> None:
    own = [
        {"name": "migrate", "image": "registry.local/web:1.4.2", "args": ["migrate"]},
        {"name": "fetch-config", "image": "curlimages/curl:8", "args": ["https://config/web"]},
    ]
    d = decide(pod(initContainers=own), namespace="shop", namespace_labels={}, config=NATIVE)
    assert d.patch[0]["path"] == "/spec/initContainers/0"
    out = injected(pod(initContainers=own))
    assert names(out, "initContainers") == [PROXY_CONTAINER, "migrate", "fetch-config"]
    assert out["spec"]["initContainers"][1:] == own


@pytest.mark.parametrize("value", ["absent", None, []], ids=["absent", "null", "empty"])
def test_a_pod_without_init_containers_gets_the_list_created(value: Any) -> None:
    # `add` at /spec/initContainers/0 needs the array: without it the API server answers the
    # review with a patch error and, failurePolicy Fail, the pod is not created.
    p = pod() if value == "absent" else pod(initContainers=value)
    d = decide(p, namespace="shop", namespace_labels={}, config=NATIVE)
    [first] = [op for op in d.patch if "initContainers" in op["path"]]
    assert first["path"] == "/spec/initContainers" and len(first["value"]) == 1
    assert names(injected(p), "initContainers") == [PROXY_CONTAINER]


@pytest.mark.parametrize("value", ["x", {"name": "migrate"}, [5]])
def test_init_containers_that_are_not_a_list_of_objects_make_the_pod_malformed(value: Any) -> None:
    # The patch adds to this list: a string or a map there has no index 0 to add at, and the
    # API server would fail the review with a patch error instead of its own message.
    d = decide(pod(initContainers=value), namespace="shop", namespace_labels={}, config=NATIVE)
    assert (d.inject, d.patch) == (False, ())
    assert d.reason == "not a well-formed Pod: spec.initContainers: not a list of objects"


def test_mutate_injects_a_native_sidecar_through_the_admission_review(
    client: FlaskClient, make_review: Review
) -> None:
    own = [{"name": "migrate", "image": "registry.local/web:1.4.2"}]
    body = make_review(pod(initContainers=own), namespace="shop", uid="u-native")
    response = client.post("/mutate", json=body).get_json()["response"]
    assert response["uid"] == "u-native" and response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    out = jsonpatch.apply_patch(body["request"]["object"], ops)
    model = as_v1_pod(out)
    assert [c.name for c in model.spec.init_containers] == [PROXY_CONTAINER, "migrate"]
    assert model.spec.init_containers[0].restart_policy == "Always"
    assert [c.name for c in model.spec.containers] == ["app"]
    again = client.post("/mutate", json=make_review(out, uid="u-again")).get_json()["response"]
    assert again["allowed"] is True and "patch" not in again


# --- regular container (older clusters) ----------------------------------------------------------


def test_without_native_sidecars_the_proxy_is_the_first_container_with_both_hooks() -> None:
    out = injected(pod(initContainers=[{"name": "migrate", "image": "m:1"}]), REGULAR)
    assert names(out, "containers") == [PROXY_CONTAINER, "app"]
    assert names(out, "initContainers") == ["migrate"]  # untouched
    proxy = out["spec"]["containers"][0]
    assert "restartPolicy" not in proxy and "startupProbe" not in proxy
    post_start = proxy["lifecycle"]["postStart"]["exec"]["command"]
    assert post_start[:2] == ["python3", "-c"]
    assert f", {ADMIN_PORT}," in post_start[2] and "'/ready'" in post_start[2]
    compile(post_start[2], "postStart", "exec")
    assert pre_stop_seconds(proxy) == 10
    # kubectl logs/exec keep going to the app, not to the proxy now first.
    assert out["metadata"]["annotations"][DEFAULT_CONTAINER_KEY] == "app"
    assert out["metadata"]["annotations"][INJECTED_KEY] == "true"
    model = as_v1_pod(out)
    assert model.spec.containers[0].lifecycle.post_start._exec.command == post_start


def test_a_default_container_the_pod_names_is_kept() -> None:
    out = injected(pod(annotations={DEFAULT_CONTAINER_KEY: "sidecar-logger"}), REGULAR)
    assert names(out, "containers") == [PROXY_CONTAINER, "app"]
    assert out["metadata"]["annotations"][DEFAULT_CONTAINER_KEY] == "sidecar-logger"


@pytest.mark.parametrize(
    ("config", "annotation", "native"),
    [(NATIVE, "false", False), (REGULAR, "true", True), (NATIVE, " False ", False)],
    ids=["native-setting-pod-says-false", "regular-setting-pod-says-true", "spaces-and-case"],
)
def test_the_pod_annotation_overrides_the_setting(
    config: InjectionConfig, annotation: str, native: bool
) -> None:
    out = injected(pod(annotations={"smictl.io/native-sidecar": annotation}), config)
    where = "initContainers" if native else "containers"
    assert names(out, where)[0] == PROXY_CONTAINER
    assert PROXY_CONTAINER not in names(out, "containers" if native else "initContainers")


def test_an_unreadable_placement_annotation_keeps_the_setting_and_says_so() -> None:
    p = pod(annotations={"smictl.io/native-sidecar": "yes please"})
    d = decide(p, namespace="shop", namespace_labels={}, config=REGULAR)
    assert names(jsonpatch.apply_patch(p, list(d.patch)), "containers")[0] == PROXY_CONTAINER
    assert d.warnings == (
        "smictl.io/native-sidecar='yes please' is neither true nor false: "
        "the control plane's default (false) applies",
    )


# --- Pod Security "restricted" -------------------------------------------------------------------

RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def restricted_problems(p: dict[str, Any]) -> list[str]:
    """What Pod Security "restricted" (v1.29+) refuses in `p` among the container-level checks
    a pod may satisfy per container: seccomp, non-root, privilege escalation, capabilities."""
    spec = p["spec"]
    pod_context = spec.get("securityContext") or {}
    problems = []
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or ():
            ctx = c.get("securityContext") or {}
            where = f"{key}[{c['name']}]"
            seccomp = (ctx.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get(
                "type"
            )
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{where}: seccompProfile {seccomp}")
            if not ctx.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
                problems.append(f"{where}: runAsNonRoot")
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation")
            if "ALL" not in (ctx.get("capabilities") or {}).get("drop", ()):
                problems.append(f"{where}: capabilities.drop")
    return problems


@pytest.mark.parametrize("config", [NATIVE, REGULAR], ids=["native", "regular"])
def test_a_restricted_pod_that_sets_seccomp_per_container_stays_restricted(
    config: InjectionConfig,
) -> None:
    # Without the proxy's own seccompProfile the API server refused such a pod after
    # injection: "restricted" needs it on the pod or on every container, the proxy included.
    p = pod(initContainers=[{"name": "migrate", "image": "m:1"}])
    for key in ("initContainers", "containers"):
        for c in p["spec"][key]:
            c["securityContext"] = dict(RESTRICTED_CONTAINER)
    assert restricted_problems(p) == []
    out = injected(p, config)
    assert restricted_problems(out) == []
    proxy = next(
        c
        for key in ("initContainers", "containers")
        for c in out["spec"].get(key) or ()
        if c["name"] == PROXY_CONTAINER
    )
    assert proxy["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert as_v1_pod(out).spec.containers  # the kubernetes client reads it back


# --- idempotence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("second", [NATIVE, REGULAR], ids=["then-native", "then-regular"])
@pytest.mark.parametrize("first", [NATIVE, REGULAR], ids=["native", "regular"])
def test_an_injected_pod_is_not_injected_again_in_either_placement(
    first: InjectionConfig, second: InjectionConfig
) -> None:
    # A reinvoked webhook, or a replica configured the other way (a rolling settings change).
    once = injected(pod(initContainers=[{"name": "migrate", "image": "m:1"}]), first)
    where = "initContainers" if first.native_sidecars else "containers"
    assert names(once, where)[0] == PROXY_CONTAINER
    again = decide(once, namespace="shop", namespace_labels={}, config=second)
    assert (again.inject, again.patch, again.reason) == (False, (), "already injected")
    assert not again.refusal


@pytest.mark.parametrize("config", [NATIVE, REGULAR], ids=["native", "regular"])
def test_a_recorded_injected_pod_is_recognised_in_either_layout(config: InjectionConfig) -> None:
    # As the API server stores an injected pod, every default filled in: the proxy last in
    # `containers` (injected before native sidecars), or moved to a native sidecar. The
    # latter was refused (422, "initContainers already has a container named 'smictl-proxy'")
    # when a reinvoked webhook or a second replica reviewed it again.
    recorded = json.loads(RECORDED_PODS.read_text(encoding="utf-8"))["items"][0]
    recorded["metadata"]["annotations"].update(OPT_IN)
    spec = recorded["spec"]
    [proxy] = [c for c in spec["containers"] if c["name"] == PROXY_CONTAINER]
    native = copy.deepcopy(recorded)
    native["spec"]["containers"].remove(proxy)
    native["spec"]["initContainers"] = [{**proxy, "restartPolicy": "Always"}]
    as_v1_pod(native)
    for stored in (recorded, native):
        d = decide(stored, namespace="shop", namespace_labels={}, config=config)
        assert (d.inject, d.patch, d.reason, d.refusal) == (False, (), "already injected", "")


# --- the hooks, run ------------------------------------------------------------------------------


class _Ready(http.server.BaseHTTPRequestHandler):
    """The proxy's admin `/ready`: 503 for the first `not_ready` requests, then 200."""

    not_ready = 2
    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        ready = self.path == "/ready" and type(self).calls > type(self).not_ready
        self.send_response(200 if ready else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def admin_on_pod_ip() -> Iterator[str]:
    """A stand-in admin listener on the proxy's own port, at a loopback address of its own
    (the proxy binds the pod IP only): the injected hook is run exactly as injected."""
    address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    handler = type("Ready", (_Ready,), {"calls": 0})
    try:
        server = http.server.ThreadingHTTPServer((address, ADMIN_PORT), handler)
    except OSError as exc:
        pytest.skip(f"cannot listen on {address}:{ADMIN_PORT}: {exc}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield address
    server.shutdown()
    server.server_close()


def _run(command: list[str], *, pod_ip: str, timeout: float) -> subprocess.CompletedProcess[str]:
    assert command[0] == "python3"  # what the image has; here, this interpreter
    return subprocess.run(
        [sys.executable, *command[1:]],
        env={"POD_IP": pod_ip},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_post_start_hook_returns_once_the_proxy_answers_ready(admin_on_pod_ip: str) -> None:
    proxy = injected(pod(), REGULAR)["spec"]["containers"][0]
    command = proxy["lifecycle"]["postStart"]["exec"]["command"]
    done = _run(command, pod_ip=admin_on_pod_ip, timeout=30)
    assert done.returncode == 0, done.stderr


def test_the_post_start_wait_gives_up_after_its_timeout() -> None:
    # Nothing listens: the hook fails (the kubelet then restarts the proxy) instead of holding
    # the pod forever.
    proxy = injected(pod(), REGULAR)["spec"]["containers"][0]
    hook = proxy["lifecycle"]["postStart"]["exec"]["command"]
    assert hook[2] == wait_ready_script(port=ADMIN_PORT, timeout=STARTUP_SECONDS)
    script = wait_ready_script(port=ADMIN_PORT, timeout=1)  # the same, a minute shorter
    started = time.monotonic()
    done = _run(["python3", "-c", script], pod_ip="127.0.0.1", timeout=30)
    assert done.returncode == 1 and "/ready did not answer 200 within 1s" in done.stderr
    assert time.monotonic() - started < 10


def test_the_pre_stop_hook_delays_the_proxy_by_the_asked_seconds() -> None:
    p = pod(annotations={"smictl.io/proxy-wait-before-exit-seconds": "1"})
    proxy = injected(p, REGULAR)["spec"]["containers"][0]
    started = time.monotonic()
    done = _run(proxy["lifecycle"]["preStop"]["exec"]["command"], pod_ip="", timeout=30)
    assert done.returncode == 0 and time.monotonic() - started >= 1


# --- the wait before exit and the grace period ---------------------------------------------------


@pytest.mark.parametrize(
    ("grace", "annotation", "wait", "warned"),
    [
        ("absent", None, 10, False),  # the API server's default of 30 s
        (60, "40", 40, False),
        (15, None, 5, False),  # the default is fitted quietly
        (30, "25", 20, True),  # 20 + 10 s to drain = the grace period
        (5, None, None, False),  # no time to wait at all: no preStop hook
        (30, "0", None, False),
        (30, "ten", 10, True),
    ],
)
def test_the_wait_before_exit_fits_the_grace_period(
    grace: Any, annotation: str | None, wait: int | None, warned: bool
) -> None:
    annotations = (
        {} if annotation is None else {"smictl.io/proxy-wait-before-exit-seconds": annotation}
    )
    p = pod(annotations=annotations)
    if grace == "absent":
        del p["spec"]["terminationGracePeriodSeconds"]
    else:
        p["spec"]["terminationGracePeriodSeconds"] = grace
    d = decide(p, namespace="shop", namespace_labels={}, config=REGULAR)
    out = jsonpatch.apply_patch(p, list(d.patch))
    assert pre_stop_seconds(out["spec"]["containers"][0]) == wait
    assert bool(d.warnings) is warned
    assert out["spec"].get("terminationGracePeriodSeconds") == p["spec"].get(
        "terminationGracePeriodSeconds"
    )  # the app's own deadline is not the injector's to change


def test_a_clamped_wait_is_reported_with_the_numbers() -> None:
    p = pod(annotations={"smictl.io/proxy-wait-before-exit-seconds": "25"})
    d = decide(p, namespace="shop", namespace_labels={}, config=REGULAR)
    assert d.warnings == (
        "smictl.io/proxy-wait-before-exit-seconds=25: the proxy waits 20s before exiting, so "
        "that terminationGracePeriodSeconds (30s) leaves it 10s to drain; raise the grace "
        "period to wait longer",
    )


def test_native_sidecars_need_no_wait_before_exit() -> None:
    # Kubernetes sends the sidecar SIGTERM only after the app containers have exited.
    p = pod(annotations={"smictl.io/proxy-wait-before-exit-seconds": "25"})
    d = decide(p, namespace="shop", namespace_labels={}, config=NATIVE)
    proxy = jsonpatch.apply_patch(p, list(d.patch))["spec"]["initContainers"][0]
    assert "lifecycle" not in proxy and d.warnings == ()


# --- the setting ---------------------------------------------------------------------------------


def test_native_sidecars_are_on_unless_the_variable_or_flag_turns_them_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from webhook.cli import register_serve, settings_from_args

    assert Settings().native_sidecars is True
    off = Settings.from_env({"SMI_WEBHOOK_NATIVE_SIDECARS": "false"})
    assert off.native_sidecars is False
    assert off.to_env()["SMI_WEBHOOK_NATIVE_SIDECARS"] == "false"
    assert Settings.from_env(off.to_env()) == off

    def serve(*argv: str) -> Settings:
        parser = argparse.ArgumentParser()
        register_serve(parser.add_subparsers())
        return settings_from_args(parser.parse_args(["serve", "--in-cluster", *argv]))

    for name in [n for n in Settings().to_env() if n.startswith("SMI_WEBHOOK_")]:
        monkeypatch.delenv(name, raising=False)
    assert serve().native_sidecars is True
    assert serve("--no-native-sidecars").native_sidecars is False
    monkeypatch.setenv("SMI_WEBHOOK_NATIVE_SIDECARS", "false")  # the chart's way
    assert serve().native_sidecars is False


def test_mutate_follows_the_setting_and_passes_the_warnings_on(
    settings: Settings, policy_set: PolicySet, make_review: Review
) -> None:
    app = create_app(dataclasses.replace(settings, native_sidecars=False), policies=policy_set)
    try:
        p = pod(annotations={"smictl.io/proxy-wait-before-exit-seconds": "25"})
        body = make_review(p, namespace="shop", uid="u-regular")
        response = app.test_client().post("/mutate", json=body).get_json()["response"]
        out = jsonpatch.apply_patch(p, json.loads(base64.b64decode(response["patch"])))
        assert names(out, "containers") == [PROXY_CONTAINER, "app"]
        assert pre_stop_seconds(out["spec"]["containers"][0]) == 20
        assert response["warnings"] == [
            "smictl.io/proxy-wait-before-exit-seconds=25: the proxy waits 20s before exiting, "
            "so that terminationGracePeriodSeconds (30s) leaves it 10s to drain; raise the "
            "grace period to wait longer"
        ]
    finally:
        app.extensions["smictl"].store.close()


@pytest.mark.parametrize("restart", ["Never", "OnFailure"])
def test_a_job_pod_without_native_sidecars_is_warned_it_never_completes(restart: str) -> None:
    p = pod(restartPolicy=restart)
    regular = decide(p, namespace="shop", namespace_labels={}, config=REGULAR)
    assert regular.inject and len(regular.warnings) == 1
    assert f"restartPolicy {restart}" in regular.warnings[0]
    assert "never completes" in regular.warnings[0]
    # Native sidecars are stopped by the kubelet once the app exits: nothing to warn about.
    assert decide(p, namespace="shop", namespace_labels={}, config=NATIVE).warnings == ()


def test_a_port_of_the_pods_own_native_sidecar_clashes_too() -> None:
    # It runs beside the proxy in the pod's network namespace: one of the two could not bind.
    sidecar = {"name": "log-shipper", "image": "x", "restartPolicy": "Always",
               "ports": [{"containerPort": 15001}]}  # fmt: skip
    d = decide(pod(initContainers=[sidecar]), namespace="shop", namespace_labels={}, config=NATIVE)
    assert not d.inject and d.refusal.startswith("spec.initContainers[0].ports[0]: port 15001")
    # An init container that runs to completion runs beside a native proxy too (the proxy
    # starts first), and before a regular one: a clash only with the native placement.
    once = {k: v for k, v in sidecar.items() if k != "restartPolicy"}
    d = decide(pod(initContainers=[once]), namespace="shop", namespace_labels={}, config=NATIVE)
    assert not d.inject and d.refusal.startswith("spec.initContainers[0].ports[0]: port 15001")
    assert decide(
        pod(initContainers=[once]), namespace="shop", namespace_labels={}, config=REGULAR
    ).inject

"""Sidecar injection as a pure function: a Pod in, the JSON Patch that adds the proxy out.

Kept free of Flask so that `/mutate`, tests and `smictl` tooling share it. The rules:
- a Pod opts in with the annotation `smictl.io/inject: enabled` or through its namespace's label
  `smictl.io/inject: enabled`; the pod annotation `disabled` wins over the namespace;
- host-network pods are never injected (the proxy's ports would collide on the node), nor pods
  without containers (the API server refuses those with its own message);
- the inbound proxy forwards to a port it can reach: an app-port annotation or containerPort
  outside 1-65535, on UDP/SCTP, or equal to one of the proxy's own ports is passed over;
- an injected pod (it already has the `smictl-proxy` container, or a native sidecar of that
  name) gets no patch, so a replayed review or a second mutating pass changes nothing;
- a body whose fields do not have a Pod's types (a list for a containerPort, a number for
  `ports`) is refused (422) with the field's path, whether or not it opted in: it is no Pod
  the API server would send, and reading it anyway would guess at what it means. So is one
  whose ServiceAccount name (the proxy's identity `ns/sa`) is not a DNS-1123 subdomain: the
  proxy would carry a SPIFFE ID no certificate can be issued for;
- the patch holds only `add` operations, with JSON Pointer (RFC 6901) escaping of keys such as
  `smictl.io/injected`.

Where the proxy goes decides whether the app can use the network while it starts and stops:
- native sidecar (default; `--no-native-sidecars` or the pod annotation
  `smictl.io/native-sidecar: "false"` turn it off): the first entry of `initContainers`, with
  `restartPolicy: Always` and a startup probe on the admin `/ready`. The kubelet starts the
  containers after it (init containers included: they get the mesh too) only once it is ready,
  and stops it only after the app containers have exited (Kubernetes >= 1.29);
- regular container (clusters without native sidecars): the first entry of `containers`, with
  a `postStart` hook that holds the app's start until `/ready` answers (Istio's
  holdApplicationUntilProxyStarts) and a `preStop` hook that delays the proxy's SIGTERM
  (Linkerd's proxy-wait-before-exit-seconds, annotation `smictl.io/proxy-wait-before-exit-seconds`)
  so the app's outbound calls during its own graceful shutdown still go through. The wait is
  clamped to what the pod's terminationGracePeriodSeconds leaves the proxy to drain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smi.validation.names import check_subdomain
from smi.yamlpos import join_path

INJECT_KEY = "smictl.io/inject"
INJECTED_KEY = "smictl.io/injected"
APP_PORT_KEY = "smictl.io/app-port"
NATIVE_SIDECAR_KEY = "smictl.io/native-sidecar"
WAIT_BEFORE_EXIT_KEY = "smictl.io/proxy-wait-before-exit-seconds"
# kubectl logs/exec pick this container when none is named; with the proxy first in
# `containers` they would otherwise pick the proxy (Istio sets it for the same reason).
DEFAULT_CONTAINER_KEY = "kubectl.kubernetes.io/default-container"
PROXY_CONTAINER = "smictl-proxy"
CERT_VOLUME = "smictl-certs"
TOKEN_VOLUME = "smictl-token"  # noqa: S105 - a volume name
CERT_DIR = "/var/run/smictl/certs"
TOKEN_DIR = "/var/run/secrets/smictl/token"  # noqa: S105 - a mount path
TOKEN_AUDIENCE = "smictl"  # noqa: S105 - an audience name
INBOUND_PORT = 15006
OUTBOUND_PORT = 15001
ADMIN_PORT = 15020
# The proxy listens on these in the pod's network namespace: never a port to forward to.
PROXY_PORTS = frozenset({INBOUND_PORT, OUTBOUND_PORT, ADMIN_PORT})
PROXY_UID = 1337
# How long app containers are held for the proxy to become ready, in both placements: the
# native sidecar's startup probe (then the kubelet restarts it, and the app still waits) and
# the postStart hook of the regular container (then the kubelet kills it and the app starts).
STARTUP_SECONDS = 60
# Regular-container placement only: how long the proxy's preStop hook delays its SIGTERM, and
# the most a pod may ask (2^31 - 1 s, 68 years: the grace period clamps it long before, and
# past about 9.2e9 s the hook's `time.sleep` would fail at once, leaving no wait at all).
DEFAULT_WAIT_BEFORE_EXIT_SECONDS = 10
MAX_WAIT_BEFORE_EXIT_SECONDS = 2**31 - 1
# What the proxy needs after SIGTERM to drain requests in flight (`smictl proxy
# --drain-timeout`, default 10 s), and the grace period of a pod that sets none.
PROXY_DRAIN_SECONDS = 10
DEFAULT_GRACE_SECONDS = 30
# The proxy image runs smictl, a Python program: its interpreter is the one tool the hooks can
# count on (no shell is assumed; the chart's demo runs `python3` from the same image).
HOOK_PYTHON = "python3"
# The annotations the injector reads: Kubernetes annotations are text, and a number or a list
# here would be read as something the pod did not say (`str([...])`).
_ANNOTATIONS_READ = (
    INJECT_KEY,
    APP_PORT_KEY,
    NATIVE_SIDECAR_KEY,
    WAIT_BEFORE_EXIT_KEY,
    DEFAULT_CONTAINER_KEY,
)


@dataclass(frozen=True, slots=True)
class InjectionConfig:
    """What the proxy container is built from (the control plane's settings)."""

    image: str
    control_plane_url: str
    trust_domain: str = "cluster.local"
    # The mesh CA certificate (PEM) the proxy verifies peers with; empty when unknown.
    ca_pem: str = ""
    # The CA of the control plane's serving certificate, where it is not the mesh CA.
    control_plane_ca_pem: str = ""
    # Inject the proxy as a native sidecar (an init container with restartPolicy Always);
    # off for clusters older than Kubernetes 1.29. A pod's NATIVE_SIDECAR_KEY overrides it.
    native_sidecars: bool = True


@dataclass(frozen=True, slots=True)
class InjectionDecision:
    """Whether a pod is injected, why (for the decision log), and the patch."""

    inject: bool
    reason: str
    patch: tuple[dict[str, Any], ...] = ()
    # An opted-in pod the proxy cannot be added to as it is: admission refuses it (422) with
    # this reason. Letting it run without the proxy would leave an opted-in workload
    # unprotected; patching it would give a Pod the API server refuses with an unclear
    # "Duplicate value", or a proxy that cannot bind its ports.
    refusal: str = ""
    # What the pod asked for and did not get (an unreadable annotation, a wait clamped to the
    # grace period): admission warnings, and lines of the decision log.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the proxy goes in one pod, read from the settings, its annotations and its grace
    period."""

    native: bool
    # Regular-container placement: seconds the proxy's preStop hook delays its SIGTERM (0: none).
    wait_before_exit: int = 0
    warnings: tuple[str, ...] = ()


def escape_pointer(token: str) -> str:
    """RFC 6901: `~` becomes `~0` and `/` becomes `~1` (in that order)."""
    return token.replace("~", "~0").replace("/", "~1")


def decide(
    pod: Mapping[str, Any],
    *,
    namespace: str,
    namespace_labels: Mapping[str, str],
    config: InjectionConfig,
) -> InjectionDecision:
    """Whether and how to inject `pod`, created in `namespace`."""
    # The namespace is half of the proxy's identity: `/default` is none a certificate is for.
    problem = malformed(pod) or (
        "" if namespace else "metadata.namespace: missing, and the review names none"
    )
    if problem:
        # Refused, not passed over: an opted-in pod would otherwise run without its proxy,
        # and the answer names the field (as `smictl inject` does for the same pod).
        reason = f"not a well-formed Pod: {problem}"
        return InjectionDecision(False, reason, refusal=reason)
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    annotations = meta.get("annotations") or {}
    wanted = annotations.get(INJECT_KEY)
    if wanted == "disabled":
        return InjectionDecision(False, f"pod annotation {INJECT_KEY}=disabled")
    if wanted != "enabled" and namespace_labels.get(INJECT_KEY) != "enabled":
        return InjectionDecision(False, "neither the pod nor its namespace opted in")
    unfit = _unfit(spec)
    if unfit:
        return InjectionDecision(False, unfit)
    plan = placement(pod, config=config)
    clash = _clash(spec, native=plan.native)
    if clash:
        return InjectionDecision(False, "refused", refusal=clash)
    patch = build_patch(pod, namespace=namespace, config=config, plan=plan)
    return InjectionDecision(True, "injected", tuple(patch), warnings=plan.warnings)


def _unfit(spec: Mapping[str, Any]) -> str:
    """Why an opted-in pod's spec is not injected, or ""."""
    if spec.get("hostNetwork"):
        return "host-network pods are not injected"
    containers = spec.get("containers") or ()
    if any(c.get("name") == PROXY_CONTAINER for c in containers) or _native_proxy(spec):
        return "already injected"
    if not containers:
        # Nothing to protect, and the API server refuses a Pod without containers with its own
        # message; adding the proxy would make an invalid Pod valid (and run only the proxy).
        return "the pod has no containers"
    return ""


def _native_proxy(spec: Mapping[str, Any]) -> bool:
    """Whether `spec` has the proxy as a native sidecar. An init container of that name
    without restartPolicy Always is not ours: it would run to completion before the app, and
    `_clash` refuses the pod."""
    return any(
        c.get("name") == PROXY_CONTAINER and c.get("restartPolicy") == "Always"
        for c in spec.get("initContainers") or ()
    )


def _clash(spec: Mapping[str, Any], *, native: bool) -> str:
    """What in an opted-in pod would collide with the injected proxy, or "". A `native` proxy
    starts before every init container, so each of them runs beside it."""
    for field in ("initContainers", "ephemeralContainers"):
        for c in spec.get(field) or ():
            if isinstance(c, Mapping) and c.get("name") == PROXY_CONTAINER:
                return f"spec.{field} already has a container named {PROXY_CONTAINER!r}"
    for i, volume in enumerate(spec.get("volumes") or ()):
        if isinstance(volume, Mapping) and volume.get("name") in (CERT_VOLUME, TOKEN_VOLUME):
            return f"spec.volumes[{i}]: the name {volume['name']!r} is the injected proxy's"
    # Containers that run beside the proxy in the pod's network namespace: the app containers
    # and the pod's own native sidecars (init containers with restartPolicy Always).
    for field in ("containers", "initContainers"):
        for i, c in enumerate(spec.get(field) or ()):
            if not isinstance(c, Mapping):
                continue
            if field == "initContainers" and not native and c.get("restartPolicy") != "Always":
                continue  # runs to completion before the proxy, a regular container, starts
            for j, port in enumerate(c.get("ports") or ()):
                number = port.get("containerPort") if isinstance(port, Mapping) else None
                if number in PROXY_PORTS and str(port.get("protocol") or "TCP") == "TCP":
                    return (
                        f"spec.{field}[{i}].ports[{j}]: port {number} is the injected proxy's "
                        f"({', '.join(map(str, sorted(PROXY_PORTS)))})"
                    )
    return ""


def malformed(pod: Mapping[str, Any]) -> str:
    """The first field of `pod` whose type the injector relies on and that has another, as
    `path: reason`, or "". The API server only sends typed Pods; anything else is some other
    caller's body, and is refused (422) rather than read as something it does not say. Absent
    and null mean absent; `[]`, `""` or `0` in place of an object (or `{}` in place of a list)
    are reported, not read as empty."""
    meta, spec = _or_empty(pod.get("metadata")), _or_empty(pod.get("spec"))
    for field, value in (("metadata", meta), ("spec", spec)):
        if not isinstance(value, Mapping):
            return f"{field}: not an object"
    return _malformed_metadata(meta) or _malformed_spec(spec)


def _malformed_metadata(meta: Mapping[str, Any]) -> str:
    annotations = _or_empty(meta.get("annotations"))
    if not isinstance(annotations, Mapping):
        return "metadata.annotations: not an object"
    for key in _ANNOTATIONS_READ:
        if not isinstance(_or_text(annotations.get(key)), str):
            return f"{join_path('metadata.annotations', key)}: not text"
    return ""


def _malformed_spec(spec: Mapping[str, Any]) -> str:
    for field in ("serviceAccountName", "serviceAccount"):
        if not isinstance(_or_text(spec.get(field)), str):
            return f"spec.{field}: not text"
    field, account = service_account(spec)
    if account:
        # Kubernetes' rule for ServiceAccount names, which Identity.parse holds the proxy's
        # identity to: `Bad_SA` would be injected as `.../sa/Bad_SA`, an identity no
        # certificate is issued for (the API server would refuse the pod after admission).
        found = check_subdomain(account, f"spec.{field}", what="ServiceAccount name")
        if found:
            return f"spec.{field}: {found[0].message}"
    for field in ("containers", "initContainers", "ephemeralContainers", "volumes"):
        items = _or_empty_list(spec.get(field))
        if not isinstance(items, list) or not all(isinstance(c, Mapping) for c in items):
            return f"spec.{field}: not a list of objects"
    # The ports of the containers beside the proxy are checked against its own (`_clash`)
    # and one of them becomes the app port (`app_port`).
    for field in ("containers", "initContainers"):
        for i, container in enumerate(spec.get(field) or ()):
            problem = _malformed_ports(container.get("ports"), path=f"spec.{field}[{i}].ports")
            if problem:
                return problem
    return ""


def _malformed_ports(ports: Any, *, path: str) -> str:
    ports = _or_empty_list(ports)
    if not isinstance(ports, list) or not all(isinstance(p, Mapping) for p in ports):
        return f"{path}: not a list of objects"
    for j, port in enumerate(ports):
        number = port.get("containerPort")
        if number is not None and (not isinstance(number, int) or isinstance(number, bool)):
            return f"{path}[{j}].containerPort: not an integer"
    return ""


def service_account(spec: Mapping[str, Any]) -> tuple[str, Any]:
    """(the field of `spec` that names the pod's ServiceAccount, its value): the deprecated
    `serviceAccount` stands in for a missing or empty `serviceAccountName`, and is ignored
    beside one, as the API server reads them. The value is None or "" when neither names one
    (the pod runs as `default`)."""
    name = spec.get("serviceAccountName")
    if name is None or name == "":
        legacy = spec.get("serviceAccount")
        if legacy is not None and legacy != "":
            return "serviceAccount", legacy
    return "serviceAccountName", name


def _or_empty(value: Any) -> Any:
    """`value`, or an empty object when it is absent (None); any other value is kept, so that
    `[]` or `""` in place of an object is reported as malformed, not read as `{}`."""
    return {} if value is None else value


def _or_text(value: Any) -> Any:
    """`value`, or "" when it is absent (None)."""
    return "" if value is None else value


def _or_empty_list(value: Any) -> Any:
    """`value`, or an empty list when it is absent (None): `{}` or `0` in place of a list is
    reported as malformed, not read as `[]`."""
    return [] if value is None else value


def build_patch(
    pod: Mapping[str, Any],
    *,
    namespace: str,
    config: InjectionConfig,
    plan: Placement | None = None,
) -> list[dict[str, Any]]:
    """The `add` operations that inject the proxy, its volumes and the injected marker."""
    plan = plan if plan is not None else placement(pod, config=config)
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    identity = f"{namespace}/{service_account(spec)[1] or 'default'}"
    container = proxy_container(identity=identity, app_port=app_port(pod), config=config)
    marks = {INJECTED_KEY: "true"}
    if plan.native:
        # First, before the pod's own init containers: those that call the network (fetch a
        # config, migrate a database) go through the mesh too, as with Istio's ordering.
        sidecar = native_sidecar(container)
        ops = _add_first(spec, "initContainers", "/spec/initContainers", sidecar)
    else:
        # First: the kubelet starts containers in order and waits for each postStart hook, so
        # the app containers after it start once the proxy is ready.
        sidecar = held_sidecar(container, wait_before_exit=plan.wait_before_exit)
        ops = [{"op": "add", "path": "/spec/containers/0", "value": sidecar}]
        app = spec["containers"][0].get("name")
        # An empty value names no container (kubectl then takes the first: the proxy).
        chosen = (meta.get("annotations") or {}).get(DEFAULT_CONTAINER_KEY)
        if isinstance(app, str) and not (isinstance(chosen, str) and chosen.strip()):
            marks[DEFAULT_CONTAINER_KEY] = app
    ops += _add_to_list(spec, "volumes", "/spec/volumes", proxy_volumes())
    if pod.get("metadata") is None:  # no object to add the annotation to: create it
        ops.append({"op": "add", "path": "/metadata", "value": {"annotations": marks}})
    else:
        ops += _add_to_map(meta, "annotations", "/metadata/annotations", marks)
    return ops


def placement(pod: Mapping[str, Any], *, config: InjectionConfig) -> Placement:
    """Native sidecar or regular container for `pod`: the settings' choice unless the pod's
    NATIVE_SIDECAR_KEY says `true` or `false`; for a regular container, the preStop wait."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    warnings: list[str] = []
    native = config.native_sidecars
    raw = annotations.get(NATIVE_SIDECAR_KEY)
    if raw is not None:
        choice = {"true": True, "false": False}.get(str(raw).strip().lower())
        if choice is None:
            warnings.append(
                f"{NATIVE_SIDECAR_KEY}={str(raw)[:64]!r} is neither true nor false: "
                f"the control plane's default ({str(native).lower()}) applies"
            )
        else:
            native = choice
    if native:
        return Placement(native=True, warnings=tuple(warnings))
    spec = pod.get("spec") or {}
    restart = spec.get("restartPolicy")
    if restart in ("Never", "OnFailure"):
        # A Job's pod completes when all its containers have exited; a proxy in `containers`
        # never does, so the Job never finishes (native sidecars are stopped by the kubelet).
        warnings.append(
            f"restartPolicy {restart}: with the proxy as a regular container this pod never "
            f"completes (the proxy keeps running after the app exits); inject it as a native "
            f'sidecar ({NATIVE_SIDECAR_KEY}: "true", Kubernetes >= 1.29)'
        )
    wait, more = _wait_before_exit(annotations, spec)
    return Placement(native=False, wait_before_exit=wait, warnings=(*warnings, *more))


def _wait_before_exit(
    annotations: Mapping[str, Any], spec: Mapping[str, Any]
) -> tuple[int, list[str]]:
    """The preStop wait: WAIT_BEFORE_EXIT_KEY or the default, clamped so that the proxy still
    has PROXY_DRAIN_SECONDS of the pod's grace period to drain after it. Past the grace period
    the kubelet kills the proxy, mid-wait or mid-drain; raising the pod's grace period instead
    would change when its app is killed, which is not the injector's to decide."""
    warnings: list[str] = []
    wait = DEFAULT_WAIT_BEFORE_EXIT_SECONDS
    raw = annotations.get(WAIT_BEFORE_EXIT_KEY)
    unreadable = ""
    if raw is not None:
        text = str(raw)
        problem = _wait_problem(text)
        if problem:
            unreadable = f"{WAIT_BEFORE_EXIT_KEY}={text[:64]!r} {problem}"
            raw = None
        else:
            wait = int(text)
    grace = spec.get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or isinstance(grace, bool) or grace < 0:
        grace = DEFAULT_GRACE_SECONDS  # the API server's default, set before admission
    budget = max(0, grace - PROXY_DRAIN_SECONDS)
    if wait > budget:
        if raw is not None:  # the default is fitted quietly; an asked-for wait is reported
            warnings.append(
                f"{WAIT_BEFORE_EXIT_KEY}={wait}: the proxy waits {budget}s before exiting, "
                f"so that terminationGracePeriodSeconds ({grace}s) leaves it "
                f"{grace - budget}s to drain; raise the grace period to wait longer"
            )
        wait = budget
    if unreadable:  # said with the wait that applies, fitted or not
        applies = f"{DEFAULT_WAIT_BEFORE_EXIT_SECONDS}s"
        if wait != DEFAULT_WAIT_BEFORE_EXIT_SECONDS:
            applies += f", fitted to terminationGracePeriodSeconds ({grace}s): {wait}s"
        warnings.append(f"{unreadable}: the default applies ({applies})")
    return wait, warnings


def _wait_problem(text: str) -> str:
    """Why `text` is no wait the preStop hook can take, or "". A long run of digits is a whole
    number, too large: it is told the range, not that it is no number (and never reaches
    int(), which refuses more than 4300 digits)."""
    if not (text.isascii() and text.isdigit()):
        return "is not a whole number of seconds"
    if len(text.lstrip("0")) > 10 or int(text) > MAX_WAIT_BEFORE_EXIT_SECONDS:
        return f"is out of range (0 to {MAX_WAIT_BEFORE_EXIT_SECONDS} seconds)"
    return ""


def app_port(pod: Mapping[str, Any]) -> int | None:
    """The application port the inbound proxy forwards to: the `smictl.io/app-port`
    annotation, else the first declared TCP containerPort, else None (no inbound listener).

    Only a port the proxy can forward to counts: 1-65535 and not one of the proxy's own ports
    (forwarding to those would loop through the proxy, or stop it at start-up); a declared
    UDP or SCTP port is not where TCP/HTTP traffic goes. Anything else is ignored like a
    non-numeric annotation."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    raw = str(annotations.get(APP_PORT_KEY, ""))
    # At most 5 significant digits before int(): Python refuses more than 4300 (ValueError).
    digits = raw.lstrip("0") or "0"
    if raw.isascii() and raw.isdigit() and len(digits) <= 5 and _forwardable(int(digits)):
        return int(digits)
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            number = port.get("containerPort")
            if (
                isinstance(number, int)
                and not isinstance(number, bool)
                and _forwardable(number)
                and str(port.get("protocol") or "TCP") == "TCP"
            ):
                return number
    return None


def _forwardable(port: int) -> bool:
    return 0 < port <= 65535 and port not in PROXY_PORTS


def proxy_container(
    *, identity: str, app_port: int | None, config: InjectionConfig
) -> dict[str, Any]:
    # The names `smictl proxy` reads (proxy/cli.py: every flag as SMI_PROXY_<FLAG>).
    url = config.control_plane_url
    env = [
        {"name": "SMI_PROXY_IDENTITY", "value": identity},
        {"name": "SMI_PROXY_TRUST_DOMAIN", "value": config.trust_domain},
        {"name": "SMI_PROXY_POLICY", "value": f"{url}/mesh/v1/policy"},
        {"name": "SMI_PROXY_CSR_URL", "value": f"{url}/mesh/v1/certificates"},
        {"name": "SMI_PROXY_TOKEN_FILE", "value": f"{TOKEN_DIR}/token"},
        {"name": "SMI_PROXY_OUTBOUND", "value": str(OUTBOUND_PORT)},
        {"name": "SMI_PROXY_ADMIN", "value": str(ADMIN_PORT)},
        # The root filesystem is read-only: the proxy writes its key and certificate (for
        # OpenSSL to load) in a private directory under $TMPDIR, the in-memory volume.
        {"name": "TMPDIR", "value": CERT_DIR},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        # Peers reach the inbound listener on the pod IP, so it listens on every address of
        # the pod's own network namespace: `*` is both families, whichever the pod has (IPv4,
        # IPv6 or dual-stack; 0.0.0.0 would leave an IPv6 pod address unserved). The outbound
        # listeners take plain HTTP and send it with this workload's certificate: on the pod
        # IP they would let any pod call as this one, so only the app, on localhost, reaches
        # them. The admin listener only where the kubelet probes it ($(POD_IP), the primary
        # pod IP of either family, is expanded by the kubelet from the variable above).
        {"name": "SMI_PROXY_BIND", "value": "*"},
        {"name": "SMI_PROXY_OUTBOUND_BIND", "value": "127.0.0.1"},
        {"name": "SMI_PROXY_ADMIN_BIND", "value": "$(POD_IP)"},
    ]
    if app_port is not None:
        env.insert(3, {"name": "SMI_PROXY_INBOUND", "value": f"{INBOUND_PORT}:{app_port}"})
    if config.ca_pem:
        env.append({"name": "SMI_PROXY_CA_PEM", "value": config.ca_pem})
    if config.control_plane_ca_pem:
        env.append({"name": "SMI_PROXY_CONTROL_PLANE_CA_PEM", "value": config.control_plane_ca_pem})
    return {
        "name": PROXY_CONTAINER,
        "image": config.image,
        "args": ["proxy"],
        "env": env,
        "ports": [
            {"name": "smi-inbound", "containerPort": INBOUND_PORT, "protocol": "TCP"},
            {"name": "smi-outbound", "containerPort": OUTBOUND_PORT, "protocol": "TCP"},
            {"name": "smi-admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": ADMIN_PORT},
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        "resources": {
            "requests": {"cpu": "50m", "memory": "32Mi"},
            "limits": {"memory": "128Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": PROXY_UID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            # Pod Security "restricted" wants it on the pod or on every container: a pod that
            # sets it per container only would be refused once the proxy was added without it.
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": CERT_VOLUME, "mountPath": CERT_DIR},
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
        ],
    }


def native_sidecar(container: Mapping[str, Any]) -> dict[str, Any]:
    """`container` as a native sidecar: an init container that keeps running (restartPolicy
    Always) and whose startup probe holds every container after it until the proxy is ready.
    The kubelet stops it after the app containers have exited."""
    return {
        **container,
        "restartPolicy": "Always",
        "startupProbe": {
            "httpGet": {"path": "/ready", "port": ADMIN_PORT},
            "periodSeconds": 1,
            "failureThreshold": STARTUP_SECONDS,
        },
    }


def held_sidecar(container: Mapping[str, Any], *, wait_before_exit: int) -> dict[str, Any]:
    """`container` as a regular container that holds the app until it is ready (postStart)
    and, with `wait_before_exit` > 0, outlives the app's shutdown by that many seconds
    (preStop: the kubelet sends SIGTERM to the proxy only after the hook returns)."""
    command = [HOOK_PYTHON, "-c", wait_ready_script(port=ADMIN_PORT, timeout=STARTUP_SECONDS)]
    lifecycle: dict[str, Any] = {"postStart": {"exec": {"command": command}}}
    if wait_before_exit > 0:
        sleep = f"import time; time.sleep({wait_before_exit})"
        lifecycle["preStop"] = {"exec": {"command": [HOOK_PYTHON, "-c", sleep]}}
    return {**container, "lifecycle": lifecycle}


def wait_ready_script(*, port: int, timeout: float) -> str:
    """Python source that exits 0 once `http://$POD_IP:<port>/ready` answers 200, and 1 after
    `timeout` seconds. The admin listener binds the pod IP only (SMI_PROXY_ADMIN_BIND), and
    http.client, unlike urllib, ignores any *_proxy variable."""
    return (
        "import http.client, os, sys, time\n"
        f"end = time.monotonic() + {timeout}\n"
        "while time.monotonic() < end:\n"
        "    try:\n"
        f"        c = http.client.HTTPConnection(os.environ['POD_IP'], {port}, timeout=1)\n"
        "        c.request('GET', '/ready')\n"
        "        if c.getresponse().status == 200:\n"
        "            sys.exit(0)\n"
        "    except (OSError, http.client.HTTPException):\n"
        "        pass\n"
        "    time.sleep(0.5)\n"
        f"sys.exit('smictl-proxy: /ready did not answer 200 within {timeout}s')\n"
    )


def proxy_volumes() -> list[dict[str, Any]]:
    """An in-memory directory for the workload key and certificate, and a projected
    ServiceAccount token (audience `smictl`) the proxy presents to get its certificate."""
    return [
        {"name": CERT_VOLUME, "emptyDir": {"medium": "Memory"}},
        {
            "name": TOKEN_VOLUME,
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": TOKEN_AUDIENCE,
                            "expirationSeconds": 3600,
                            "path": "token",
                        }
                    }
                ]
            },
        },
    ]


def _add_to_list(
    parent: Mapping[str, Any], key: str, path: str, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    if not parent.get(key):
        return [{"op": "add", "path": path, "value": items}]
    return [{"op": "add", "path": f"{path}/-", "value": item} for item in items]


def _add_first(
    parent: Mapping[str, Any], key: str, path: str, item: dict[str, Any]
) -> list[dict[str, Any]]:
    """Insert `item` at the start of the list `key`; create the list where it is absent, null
    or empty (an `add` at `<path>/0` needs the array to exist)."""
    if not parent.get(key):
        return [{"op": "add", "path": path, "value": [item]}]
    return [{"op": "add", "path": f"{path}/0", "value": item}]


def _add_to_map(
    parent: Mapping[str, Any], key: str, path: str, entries: Mapping[str, str]
) -> list[dict[str, Any]]:
    if not parent.get(key):
        return [{"op": "add", "path": path, "value": dict(entries)}]
    return [
        {"op": "add", "path": f"{path}/{escape_pointer(k)}", "value": v} for k, v in entries.items()
    ]

"""`smictl inject`: the webhook's sidecar injection, offline, on manifests in files.

For GitOps and CI pipelines and for clusters without the mutating webhook (as `linkerd inject`
and `istioctl kube-inject`): `smictl inject -f FILE|DIR|- > injected.yaml` finds every Pod and
pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
ReplicationController, and those inside a `kind: List` or a typed list such as
`DeploymentList`, read by `smi.loading.list_items` as every command reads them) and applies to
it the JSON Patch that `webhook.injection.decide` computes for `/mutate`, with an
`InjectionConfig` built from the same settings as `smictl serve`'s (flags or `SMI_WEBHOOK_*`,
same defaults). So a pod from the output is the pod the webhook would have made; this module
only finds pods and prints.

Decisions that differ from admission because nothing is known of the cluster:
- the namespace's `smictl.io/inject` label is unknown: every pod counts as opted in, except
  one whose own annotation says `smictl.io/inject: disabled` (skipped), as linkerd and istioctl
  do; pods in `--excluded-namespaces` are skipped, as the webhook lets them pass;
- the namespace is the object's, else `-n` (default `default`): it is part of the proxy's
  identity (`ns/serviceaccount`), so it must be where the object will be applied; an object's
  own namespace that is not a DNS-1123 label, or not text, fails the run as a refusal does
  (it would name an identity no certificate can carry, or silently not be the object's);
- a pod template is read as the API server hands the pod to the webhook: the deprecated
  `serviceAccount` stands in for a missing `serviceAccountName`;
- already injected, host-network and container-less pods are skipped (one stderr line each);
- a pod the injector refuses, or one that is not a well-formed Pod, fails the whole run
  (SMI7011, exit 1) with nothing on standard output: never half an output to apply.

Standard error has one line per skipped pod, refusal or warning, in document order (a user
fixing a manifest reads it top to bottom), then the summary.

Every document is printed back, in order, as YAML (JSON when the input is one JSON document);
objects other than pods pass through with the same content. The documents are re-serialised
(PyYAML), so comments and the original formatting are not kept.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

from smi.commands import flags
from smi.errors import Diagnostic, LoadError, Severity, SMIError, escaped_line
from smi.loading import ListItem, list_items, pod_path
from smi.sources import STDIN, Lines, RawDocument, read_documents, read_path
from smi.validation.names import check_label
from smi.yamlout import Dumper
from smi.yamlpos import PathPart, format_path, parse_path
from webhook.injection import INJECT_KEY, InjectionConfig, decide, malformed
from webhook.settings import (
    PREFIX,
    Settings,
    control_plane_url_problem,
    namespaces_problem,
    proxy_image_problem,
)

EXIT_OK = 0

# The SMI_WEBHOOK_* settings `inject` reads: those `mutate_review` builds its InjectionConfig
# from, and the namespaces admission lets pass. Others (`--workers`, `--bind`) are not its
# business, and a bad value of one must not fail it.
_ENV_FIELDS = frozenset(
    {
        "proxy_image",
        "control_plane_url",
        "trust_domain",
        "mesh_ca_cert_file",
        "serving_ca_file",
        "native_sidecars",
        "excluded_namespaces",
    }
)


def env_settings(environ: Mapping[str, str] | None = None, *, lenient: bool = False) -> Settings:
    """The settings of `_ENV_FIELDS` from SMI_WEBHOOK_*; SMIError (SMI7009) for a bad one, or,
    `lenient`, without it (flag defaults: `run` reports it, with the others still read)."""
    environ = os.environ if environ is None else environ
    wanted = {PREFIX + name.upper() for name in _ENV_FIELDS}
    values = {k: v for k, v in environ.items() if k in wanted}
    if lenient:
        values = {k: v for k, v in values.items() if _parses(k, v)}
    return Settings.from_env(values)


def _parses(key: str, value: str) -> bool:
    try:
        Settings.from_env({key: value})
    except SMIError:
        return False
    return True


def register(sub: Any) -> None:
    p = sub.add_parser(
        "inject",
        help="add the sidecar proxy to pods in manifests, as the webhook would (offline)",
        description="Inject the smictl proxy into every Pod and pod template in the manifests "
        "exactly as the mutating webhook would, and print all documents back in order (YAML; "
        "JSON for one JSON document). Pods annotated smictl.io/inject: disabled, host-network "
        "pods and injected pods are skipped. Comments are not kept.",
    )
    # Parsers are built for every command: a bad variable is reported when inject runs.
    env = env_settings(lenient=True)
    flags.add_filenames(
        p, help="a manifest file, a directory (recursive), or - for standard input (repeatable)"
    )
    p.add_argument(
        "-n",
        "--namespace",
        default="default",
        type=flags.namespace,
        help="namespace of objects that name none: part of the proxy's identity "
        "(default %(default)s)",
    )
    _config_flags(p, env)
    p.set_defaults(func=run)


def _config_flags(p: argparse.ArgumentParser, env: Settings) -> None:
    """`serve`'s flags that decide the injected proxy, with its defaults and variables."""
    ca_default = str(env.mesh_ca_cert_file) if env.mesh_ca_cert_file else None
    p.add_argument(
        "--mesh-ca-cert",
        dest="ca_pem",
        type=mesh_ca_pem,
        default=ca_default,
        required=ca_default is None,
        metavar="FILE",
        help="the mesh CA certificate (ca.crt) proxies verify peers with "
        "(env SMI_WEBHOOK_MESH_CA_CERT_FILE)",
    )
    p.add_argument(
        "--serving-ca",
        dest="control_plane_ca_pem",
        type=serving_ca_pem,
        default=str(env.serving_ca_file) if env.serving_ca_file else "",
        metavar="FILE",
        help="CA certificate(s) of the control plane's serving certificate, where not the "
        "mesh CA (env SMI_WEBHOOK_SERVING_CA_FILE)",
    )
    p.add_argument(
        "--control-plane-url",
        metavar="URL",
        type=_control_plane_url,
        default=env.control_plane_url,
        help="URL injected proxies reach the control plane at "
        "(env SMI_WEBHOOK_CONTROL_PLANE_URL, default %(default)s)",
    )
    p.add_argument(
        "--proxy-image",
        metavar="IMAGE",
        type=_proxy_image,
        default=env.proxy_image,
        help="(env SMI_WEBHOOK_PROXY_IMAGE, default %(default)s)",
    )
    p.add_argument(
        "--trust-domain",
        metavar="DOMAIN",
        type=_trust_domain,
        default=env.trust_domain,
        help="(env SMI_WEBHOOK_TRUST_DOMAIN, default %(default)s)",
    )
    p.add_argument(
        "--no-native-sidecars",
        dest="native_sidecars",
        action="store_false",
        default=env.native_sidecars,
        help="inject the proxy as the first regular container, held until ready, instead of a "
        "native sidecar init container (Kubernetes < 1.29; env SMI_WEBHOOK_NATIVE_SIDECARS)",
    )
    p.add_argument(
        "--excluded-namespaces",
        metavar="NS,...",
        type=_namespaces,
        default=",".join(env.excluded_namespaces),
        help="objects in these namespaces are skipped, as admission skips them "
        "(env SMI_WEBHOOK_EXCLUDED_NAMESPACES, default %(default)s)",
    )


# --- flag values (argparse types: a bad one is a usage error naming its flag) -------------------


def mesh_ca_pem(text: str) -> str:
    """The mesh CA certificate of `text` as the webhook injects it: its first certificate,
    PEM-encoded again (`CertificateAuthority.cert_pem`), so the two give the same text."""
    from cryptography.hazmat.primitives import serialization

    from smi.pki import PKIError, is_ca, load_certificate

    try:
        cert = load_certificate(_read(text).encode("ascii"))
    except PKIError as exc:
        raise argparse.ArgumentTypeError(f"{text}: {exc} (SMI7003)") from None
    if not is_ca(cert.extensions):
        raise argparse.ArgumentTypeError(
            f"{text}: not a CA certificate (basicConstraints CA:TRUE missing); the mesh CA is "
            "ca.crt, not a serving certificate (SMI7003)"
        )
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def serving_ca_pem(text: str) -> str:
    """The serving CA file's text as it is (the webhook injects it so), once it is known to
    hold a certificate; "" for no file."""
    if not text:
        return ""
    from smi.pki import PKIError, load_certificate

    pem = _read(text)
    try:
        load_certificate(pem.encode("ascii"))
    except PKIError as exc:
        raise argparse.ArgumentTypeError(f"{text}: {exc} (SMI7003)") from None
    return pem


def _read(text: str) -> str:
    """The ASCII text of the file `text` (PEM is ASCII; the webhook reads it so)."""
    flags.path_text(text)
    try:
        return Path(text).read_text(encoding="ascii")
    except FileNotFoundError:
        reason = "no such file"
    except UnicodeDecodeError:
        reason = "not a PEM file (not ASCII text)"
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    raise argparse.ArgumentTypeError(f"{text}: {reason} (SMI7003)")


def _control_plane_url(text: str) -> str:
    problem = control_plane_url_problem(text)
    return _checked(text, problem and f"{text!r}: {problem}")


def _proxy_image(text: str) -> str:
    return _checked(text, proxy_image_problem(text))


def _checked(text: str, problem: str | None) -> str:
    """`text`, or a usage error with the reason `serve` gives for the same value."""
    if problem:
        raise argparse.ArgumentTypeError(f"{problem} (SMI7009)")
    return text


def _trust_domain(text: str) -> str:
    return _checked(text, flags.trust_domain_problem(text))


def _namespaces(text: str) -> frozenset[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    _checked(text, namespaces_problem(names))
    return frozenset(names)


# --- the run ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    """What one run is configured with, and what it found."""

    config: InjectionConfig
    namespace: str
    excluded: frozenset[str]
    injected: int = 0
    # One entry per stderr line, in document order: a skipped pod's note, or a refusal or a
    # warning. One list, not one per kind: printed kind by kind, a warning about the first
    # document came after the note about the last.
    reports: list[str | Diagnostic] = field(default_factory=list)

    @property
    def problems(self) -> list[Diagnostic]:
        return [r for r in self.reports if isinstance(r, Diagnostic)]

    @property
    def skipped(self) -> int:
        return sum(isinstance(r, str) for r in self.reports)


@dataclass(frozen=True, slots=True)
class _Where:
    """Where an object is: its file, its document's line map, its path in the document."""

    file: str
    lines: Lines | None
    prefix: tuple[PathPart, ...] = ()

    def at(self, *parts: PathPart) -> _Where:
        return replace(self, prefix=self.prefix + parts)

    def line(self, *parts: PathPart) -> int | None:
        return self.lines.line_of(self.prefix + parts) if self.lines is not None else None


def run(args: argparse.Namespace) -> int:
    env_settings()  # a bad SMI_WEBHOOK_* it reads: SMI7009, as `serve` reports it
    state = _Run(
        config=InjectionConfig(
            image=args.proxy_image,
            control_plane_url=args.control_plane_url,
            trust_domain=args.trust_domain,
            ca_pem=args.ca_pem,
            control_plane_ca_pem=args.control_plane_ca_pem,
            native_sidecars=args.native_sidecars,
        ),
        namespace=args.namespace,
        excluded=args.excluded_namespaces,
    )
    sources = _documents(args.paths)
    out = [_inject(doc.value, state, _Where(name, doc.lines)) for name, _, doc in sources]
    problems = state.problems
    if any(d.is_error for d in problems):
        raise SMIError(problems)
    _print(out, as_json=len(sources) == 1 and sources[0][1])
    for report in state.reports:
        print(report if isinstance(report, str) else report.format(), file=sys.stderr)
    print(_summary(state), file=sys.stderr)
    return EXIT_OK


def _documents(paths: Sequence[str]) -> list[tuple[str, bool, RawDocument]]:
    """(file name, whether it is JSON, document) of every document of every path, in order;
    LoadError with every file's problem (nothing is printed from a set that did not load)."""
    from smi.loading import holds_object, nothing_to_do
    from smi.resources import LoadResult

    docs: list[tuple[str, bool, RawDocument]] = []
    problems: list[Diagnostic] = []
    read: list[str] = []
    for path in paths:
        for name, text, problem in read_path(path, stdin=None):
            if problem is not None and not problem.is_error:
                # A symlinked directory not entered (SMI1014): said, not refused.
                print(problem.format(), file=sys.stderr)
                continue
            read.append(name)
            if problem is not None:
                problems.append(problem)
                continue
            try:
                found = read_documents(text, filename=name)
            except LoadError as exc:
                problems += exc.diagnostics
                continue
            as_json = name.lower().endswith(".json") or (
                path == STDIN and text.lstrip().startswith("{")
            )
            docs += [(name, as_json, doc) for doc in found]
    if problems:
        raise LoadError(problems)
    # A list without items holds no object, as for every command (SMI1012).
    held = any(holds_object(doc.value) for _, _, doc in docs)
    empty = None if held else nothing_to_do(LoadResult(files=read), paths, then="nothing to inject")
    if empty is not None:
        raise LoadError([empty])
    return docs


def _inject(value: Any, state: _Run, where: _Where) -> Any:
    """`value` with the proxy in its pod (or in each item's, for a list); else as it was."""
    if not isinstance(value, dict):
        return value
    listed = list_items(value)
    if listed is not None:
        if listed.problem is not None:
            state.reports.append(_located(listed.problem, where))
        elif listed.items:  # (a list without items, `items: null`, stays as it is)
            items = value["items"]
            value["items"] = [_inject_item(item, items, state, where) for item in listed.items]
        return value
    path = pod_path(value.get("kind"), value.get("apiVersion"))
    if path is None:
        return value
    pod = _get(value, path)
    if not isinstance(pod, dict):
        state.reports.append(_problem(value, where, path, "no pod template (not an object)"))
        return value
    patched = _inject_pod(pod, value, state, where, path)
    if not path:
        return patched
    parent = _get(value, path[:-1])
    parent[path[-1]] = patched
    return value


def _inject_item(item: ListItem, items: list[Any], state: _Run, where: _Where) -> Any:
    """A list's item injected as every command reads it (`smi.loading.list_items`: a typed
    list's item is of the list's type); one of another type than its typed list's fails the
    run (SMI1013), as it fails the other commands. The item keeps its shape: apiVersion and
    kind it left to its list are not added."""
    if item.problem is not None:
        state.reports.append(_located(item.problem, where))
        return items[item.index]
    original = items[item.index]
    injected = _inject(item.value, state, where.at("items", item.index))
    if injected is original or not isinstance(original, dict) or not isinstance(injected, dict):
        return injected
    return {k: v for k, v in injected.items() if k in original or k not in ("apiVersion", "kind")}


def _located(problem: Diagnostic, where: _Where) -> Diagnostic:
    """A list's problem (`smi.loading.list_items`, its path in the list) where the list is."""
    path = tuple(parse_path(problem.path))
    return replace(
        problem, path=format_path(where.prefix + path), file=where.file, line=where.line(*path)
    )


def _inject_pod(
    pod: dict[str, Any], obj: Mapping[str, Any], state: _Run, where: _Where, path: tuple[str, ...]
) -> dict[str, Any]:
    """`pod` (at `path` in `obj`) injected, or as it was with the reason noted."""
    bad_namespace = _namespace_problem(obj, where)
    if bad_namespace is not None:
        state.reports.append(bad_namespace)
        return pod
    namespace = _namespace_of(obj, state.namespace)
    ref = _ref(obj)
    if namespace in state.excluded:
        state.reports.append(_note(where, f"{ref} skipped: namespace {namespace} is excluded"))
        return pod
    problem = malformed(pod)
    if problem:
        field_path, reason = _split_path(problem)
        state.reports.append(
            _problem(obj, where, (*path, *field_path), f"not a well-formed Pod: {reason}")
        )
        return pod
    decision = decide(
        pod,  # a legacy `serviceAccount` is read as the API server reads it (webhook.injection)
        namespace=namespace,
        # The namespace's label is unknown offline: every pod counts as opted in, and the
        # pod's own `disabled` still wins (decide reads it first).
        namespace_labels={INJECT_KEY: "enabled"},
        config=state.config,
    )
    if decision.refusal:
        field_path, reason = _split_path(decision.refusal)
        state.reports.append(
            _problem(obj, where, (*path, *field_path), f"cannot inject the proxy: {reason}")
        )
        return pod
    if not decision.inject:
        state.reports.append(_note(where, f"{ref} skipped: {decision.reason}"))
        return pod
    state.injected += 1
    for warning in decision.warnings:
        state.reports.append(
            _problem(obj, where, path, warning, code="SMI7012", severity="warning")
        )
    patched: dict[str, Any] = jsonpatch.apply_patch(pod, list(decision.patch))
    return patched


def _get(value: Any, path: Sequence[str]) -> Any:
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _namespace_of(obj: Mapping[str, Any], default: str) -> str:
    meta = obj.get("metadata")
    namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
    return namespace if isinstance(namespace, str) and namespace else default


def _namespace_problem(obj: Mapping[str, Any], where: _Where) -> Diagnostic | None:
    """Why `obj`'s own namespace cannot be the proxy's, or None (none given is `-n`'s).

    Checked as `-n` is (a DNS-1123 label, SMI2006): the namespace goes into the proxy's
    SPIFFE ID, and one Kubernetes refuses names an identity no workload can have. A value
    that is not text is refused rather than read as absent: `-n` would then stand in for it
    unseen, and the proxy carry another namespace's identity."""
    meta = obj.get("metadata")
    namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
    if namespace is None or namespace == "":
        return None
    path: tuple[PathPart, ...] = ("metadata", "namespace")
    if not isinstance(namespace, str):
        return _problem(obj, where, path, "cannot inject the proxy: the namespace is not text")
    found = check_label(namespace, format_path(path), what="namespace")
    if not found:
        return None
    return _problem(obj, where, path, found[0].message, code=found[0].code)


def _ref(obj: Mapping[str, Any]) -> str:
    """`deployment/web`, as kubectl names objects."""
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return f"{str(obj.get('kind')).lower()}/{name if isinstance(name, str) else '<unnamed>'}"


# A refusal that starts with a pod's field path (`spec.containers[0].ports[1]: port 15006 ...`,
# `metadata: not an object`): the path joins the template's, so that the line is the field's
# and the diagnostic names one path (`spec.template.spec.containers[0].ports[1]`).
_LEADING_PATH = re.compile(r"((?:spec|metadata)(?:\.\w+|\[\d+\])*): ")


def _split_path(text: str) -> tuple[tuple[PathPart, ...], str]:
    """(the field path `text` starts with, the rest), or ((), text)."""
    found = _LEADING_PATH.match(text)
    if found is None:
        return (), text
    return tuple(parse_path(found.group(1))), text[found.end() :]


def _problem(
    obj: Mapping[str, Any],
    where: _Where,
    path: tuple[PathPart, ...],
    message: str,
    *,
    line: int | None = None,
    code: str = "SMI7011",
    severity: Severity = "error",
) -> Diagnostic:
    return Diagnostic(
        code=code,
        message=f"{_ref(obj)}: {message}",
        path=format_path(where.prefix + path),
        file=where.file,
        line=line if line is not None else where.line(*path),
        severity=severity,
        object_ref=_ref(obj),
    )


def _note(where: _Where, text: str) -> str:
    """`file:line: deployment/web skipped: reason`, on one line as diagnostics are."""
    line = where.line()
    located = where.file if line is None else f"{where.file}:{line}"
    return escaped_line(f"{located}: {text}")


def _summary(state: _Run) -> str:
    skipped = state.skipped
    if state.injected == 0 and skipped == 0:
        return "injected 0, skipped 0 (no Pod or pod template in the input)"
    return f"injected {state.injected}, skipped {skipped}"


# --- output -------------------------------------------------------------------------------------


def _print(docs: list[Any], *, as_json: bool) -> None:
    if as_json:
        json.dump(docs[0], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    yaml.dump_all(
        docs,
        sys.stdout,
        Dumper=Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        explicit_start=len(docs) > 1,
    )

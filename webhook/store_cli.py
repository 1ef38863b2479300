"""`smictl apply`, `smictl get`, `smictl delete`: the local store over HTTPS (`smictl serve`).

Files are loaded here first (`smi.loading`), so a syntax error is reported with file and line
before anything is sent. The server's refusals come back with the index of each object and
diagnostics with JSON paths; they are printed as `file:line: path: reason (CODE)` at the line of
the object in the file it came from, and `-o json` carries the same file and line.

`-n` works as kubectl's: it is the namespace of objects that name none, and an object that names
another is refused before anything is sent (without `-n`, such objects are sent as written).
`delete -f` reads only each object's identity (apiVersion, kind, metadata.name and namespace):
that is all a delete needs, and an object whose spec smictl would refuse must still be removable.
An identity written twice is deleted once, as `apply` stores identical copies once.

A number JSON cannot carry (`.inf`, `.nan`; `Infinity`, `NaN` in a .json file, which Python's
reader takes) is refused at its line before anything is sent: the server refuses the whole body
for it without knowing which file or line it came from.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from smi.commands import flags
from smi.errors import Diagnostic, SMIError
from smi.loading import (
    CONTEXT_KINDS,
    SMI_KIND_GROUPS,
    ContextObject,
    LoadResult,
    Resource,
    load_identities,
    load_text,
    nothing_to_do,
)
from smi.sources import Lines, non_json_number, read_documents, read_path
from smi.store.base import CLUSTER_SCOPED_KINDS, ObjectKey
from smi.yamlout import Dumper
from smi.yamlpos import format_path
from webhook.client import (
    DEFAULT_SERVER,
    DEFAULT_TIMEOUT,
    ControlPlaneClient,
    Reply,
    not_a_control_plane,
    refused,
)

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _client_flags(p: argparse.ArgumentParser) -> None:
    import os

    p.add_argument(
        "--server",
        type=_server,
        default=os.environ.get("SMICTL_SERVER", DEFAULT_SERVER),
        help="control plane URL (env SMICTL_SERVER, default %(default)s)",
    )
    p.add_argument(
        "--ca",
        type=flags.path,
        default=None,
        help="CA bundle to verify the server (env SMICTL_CA_FILE)",
    )
    p.add_argument(
        "--token-file",
        type=flags.path,
        default=None,
        help="the control plane's admin token (local mode; env SMICTL_ADMIN_TOKEN_FILE, "
        "default: admin.token beside the CA)",
    )
    p.add_argument(
        "--request-timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="give up on the control plane after this long (default %(default)g)",
    )


def _server(text: str) -> str:
    """argparse type of --server (and SMICTL_SERVER): a URL that cannot work is a usage error,
    exit 2, as for every smictl command (`notaurl`, port 99999 were exit 1)."""
    try:
        ControlPlaneClient(server=text).parsed_url()
    except SMIError as exc:
        message = exc.diagnostics[0].format().removeprefix("--server ")
        raise argparse.ArgumentTypeError(message) from exc
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 86400, not {text!r}")
    return value


def _client(args: argparse.Namespace) -> ControlPlaneClient:
    return ControlPlaneClient(
        server=args.server,
        ca_file=args.ca,
        timeout=args.request_timeout,
        token_file=args.token_file,
    )


# --- apply --------------------------------------------------------------------------------------


def register_apply(sub: Any) -> None:
    p = sub.add_parser("apply", help="create or update resources in the local control plane")
    flags.add_filenames(p)
    _namespace_flag(p)
    p.add_argument("--dry-run", action="store_true", help="admit only; store nothing")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    _client_flags(p)
    p.set_defaults(func=run_apply)


def _namespace_flag(p: argparse.ArgumentParser) -> None:
    """`-n` of the commands that write: None when not given, since only a namespace the user
    named can contradict the one an object names (kubectl: "the namespace from the provided
    object ... does not match")."""
    p.add_argument(
        "-n",
        "--namespace",
        default=None,
        type=flags.namespace,
        help="namespace of objects that name none (default: default); an object that names "
        "another is refused",
    )


Sent = Resource | ContextObject


@dataclass(frozen=True)
class Loaded:
    """The objects read from the files, in the order sent, and each file's text: a context
    object (a Service) keeps no line map, and the server's refusal of one of its fields is
    located by reading its document's lines from that text, not only when it is a file that
    could be read again (standard input cannot)."""

    objects: Sequence[Sent] = ()
    texts: Mapping[str, str] = field(default_factory=dict)


def _read(
    paths: Sequence[str], *, namespace: str | None, load: Callable[..., LoadResult], then: str
) -> Loaded:
    """Every file of `paths` read by `load` (`load_text` to apply, `load_identities` to
    delete), its warnings printed and its errors raised, and the objects in the order sent
    (by file, then place in it); SMI1012 when there is none."""
    result = LoadResult()
    texts: dict[str, str] = {}
    for path in paths:
        for name, text, problem in read_path(path, stdin=None):
            if problem is not None:
                result.diagnostics.append(problem)
                continue
            texts[name] = text
            result.extend(load(text, filename=name, default_namespace=namespace or "default"))
    _raise_errors(result)
    objects: list[Sent] = [*result.resources, *result.context]
    objects.sort(key=lambda o: (o.source.file, o.source.index))
    if not objects:
        raise SMIError(_nothing(result, paths, then=then))
    return Loaded(objects=objects, texts=texts)


def _loaded(paths: Sequence[str], *, namespace: str | None) -> Loaded:
    loaded = _read(paths, namespace=namespace, load=load_text, then="nothing applied")
    problems = [*_other_namespaces(loaded, namespace), *_non_json_numbers(loaded)]
    if problems:
        # In the order of the objects (sorted by file, then place in it), as each check finds.
        raise SMIError(sorted(problems, key=lambda d: (d.file or "", d.line or 0)))
    return loaded


def _raise_errors(result: LoadResult) -> None:
    """Print the warnings of a load; raise its errors, all of them, so nothing is sent."""
    for d in result.diagnostics:
        if not d.is_error:
            print(d.format(), file=sys.stderr)
    if not result.ok:
        raise SMIError([d for d in result.diagnostics if d.is_error])


def _nothing(result: LoadResult, paths: Sequence[str], *, then: str) -> Diagnostic:
    """SMI1012 for a load without an object to send, in the words of every other command.
    Nothing loaded, or only kinds the loader skips: sending an empty set is what a pipeline
    whose first stage printed nothing would do (`kubectl apply` refuses it too). Skipped
    kinds are not sent, so they count for nothing, as non-SMI objects do for `compile`."""
    empty = nothing_to_do(LoadResult(diagnostics=result.diagnostics, files=result.files), paths,
                          smi_only=True, then=then)  # fmt: skip
    assert empty is not None  # a load without errors or SMI objects is always "nothing"
    return empty


def _other_namespaces(loaded: Loaded, namespace: str | None) -> list[Diagnostic]:
    """With `-n`, every object that names another namespace, at its line: sending it as
    written would write or delete in a namespace the user did not name, and giving it `-n`'s
    would act on another object than the file describes. Cluster-scoped objects have none."""
    problems: list[Diagnostic] = []
    if namespace is None:
        return problems
    for index, obj in enumerate(loaded.objects):
        written = _written_namespace(obj)
        if obj.kind in CLUSTER_SCOPED_KINDS or not written or written == namespace:
            continue
        mismatch = {"code": "SMI2004", "path": "metadata.namespace", "index": index,
                    "message": f"the namespace of the object {written!r} does not match -n "
                    f"{namespace!r}: pass -n {written} (or no -n), or change the file"}  # fmt: skip
        problems.append(_locate(mismatch, loaded))
    return problems


def _non_json_numbers(loaded: Loaded) -> list[Diagnostic]:
    """SMI2003 at the first field of each object holding NaN or an infinity, naming the
    others: JSON has no such numbers (RFC 8259), so the request would be refused whole, and
    the server, which sees only the request, could not say which file and line hold one."""
    problems: list[Diagnostic] = []
    for index, obj in enumerate(loaded.objects):
        found = non_json_number(obj.raw, filename=obj.source.file)
        if found is None:
            continue
        path, message = found
        diag = {"code": "SMI2003", "path": format_path(path), "index": index, "message": message}
        problems.append(_locate(diag, loaded))
    return problems


def _written_namespace(obj: Sent) -> str:
    """`metadata.namespace` as the file writes it ("" when it names none, or no string)."""
    meta = obj.raw.get("metadata")
    written = meta.get("namespace") if isinstance(meta, Mapping) else None
    return written if isinstance(written, str) else ""


def _sendable(obj: Sent, namespace: str | None) -> dict[str, Any]:
    """The document to apply: as written, with `-n`'s namespace when it names none (the
    server would otherwise put it in `default`)."""
    raw = dict(obj.raw)
    meta = raw.get("metadata")
    if namespace is None or obj.kind in CLUSTER_SCOPED_KINDS or not isinstance(meta, Mapping):
        return raw
    if meta.get("namespace") is None or meta.get("namespace") == "":
        raw["metadata"] = {**meta, "namespace": namespace}
    return raw


def run_apply(args: argparse.Namespace) -> int:
    loaded = _loaded(args.paths, namespace=args.namespace)
    reply = _client(args).request(
        "POST",
        "/apis/smictl.io/v1/apply",
        body={
            "items": [_sendable(o, args.namespace) for o in loaded.objects],
            "dryRun": args.dry_run,
        },
    )
    return _report(reply, loaded, output=args.output)


def _report(reply: Reply, loaded: Loaded, *, output: str) -> int:
    if output == "json":
        json.dump(_located_body(reply.body, loaded), sys.stdout, indent=2)
        print()
    for w in reply.body.get("warnings") or []:
        print(_locate(w, loaded).format(), file=sys.stderr)
    if reply.status == 200:
        results = _results(reply)
        if output == "text":
            suffix = " (dry run)" if reply.body.get("dryRun") else ""
            for r in results:
                print(f"{r['kind']} {_ref(r)} {r['action']}{suffix}")
            print(f"revision {reply.body['revision']}")
        return EXIT_OK
    denials = _denials(reply)
    if not denials:
        raise refused(reply)
    for denial in denials:
        for d in denial["diagnostics"]:
            print(_locate({**d, "index": denial.get("index")}, loaded).format(), file=sys.stderr)
    print(f"smictl: {reply.body.get('error')}; nothing was changed", file=sys.stderr)
    return EXIT_INVALID


def _located_body(body: dict[str, Any], loaded: Loaded) -> dict[str, Any]:
    """The answer with each diagnostic at the file and line the text output names: the
    server only knows the object it was sent (`"file": "<request>", "line": null`)."""
    out = dict(body)
    warnings, denials = body.get("warnings"), body.get("denials")
    if isinstance(warnings, list):
        out["warnings"] = [
            _located_json(w, w.get("index"), loaded) if isinstance(w, dict) else w for w in warnings
        ]
    if isinstance(denials, list):
        out["denials"] = [_located_denial(d, loaded) if isinstance(d, dict) else d
                          for d in denials]  # fmt: skip
    return out


def _located_denial(denial: dict[str, Any], loaded: Loaded) -> dict[str, Any]:
    diagnostics = denial.get("diagnostics")
    if not isinstance(diagnostics, list):
        return denial
    index = denial.get("index")
    located = [_located_json(d, index, loaded) if isinstance(d, dict) else d for d in diagnostics]
    return {**denial, "diagnostics": located}


def _located_json(d: dict[str, Any], index: Any, loaded: Loaded) -> dict[str, Any]:
    where = _locate({**d, "index": index}, loaded)
    return {**d, "file": where.file, "line": where.line}


def _results(reply: Reply) -> list[dict[str, Any]]:
    """The results of a write the server says it made; a 200 without them (an HTML page, some
    other JSON service) must not be reported as applied."""
    results = reply.body.get("results")
    revision = reply.body.get("revision")
    if (
        not isinstance(results, list)
        or not isinstance(revision, int)
        or not all(
            isinstance(r, dict)
            and all(isinstance(r.get(k), str) for k in ("kind", "name", "action"))
            for r in results
        )
    ):
        raise not_a_control_plane(reply.server, "HTTP 200 without results and a revision")
    return results


def _denials(reply: Reply) -> list[dict[str, Any]]:
    """The denials of a refused write that carry diagnostics, as the CLI prints them."""
    denials = reply.body.get("denials")
    if not isinstance(denials, list):
        return []
    return [
        {**d, "diagnostics": [x for x in d["diagnostics"] if isinstance(x, dict)]}
        for d in denials
        if isinstance(d, dict) and isinstance(d.get("diagnostics"), list) and d["diagnostics"]
    ]


def _ref(r: dict[str, Any]) -> str:
    return f"{r['namespace']}/{r['name']}" if r.get("namespace") else str(r["name"])


def _locate(d: dict[str, Any], loaded: Loaded) -> Diagnostic:
    diag = Diagnostic(
        code=str(d.get("code") or "SMI7002"),
        message=str(d.get("message", "")),
        path=str(d.get("path") or ""),
        severity="warning" if d.get("severity") == "warning" else "error",
        object_ref=str(d.get("object") or ""),
    )
    index = d.get("index")
    objects = loaded.objects
    if isinstance(index, int) and 0 <= index < len(objects):
        obj = objects[index]
        if isinstance(obj, Resource):
            return obj.locate(diag)
        lines = _context_lines(obj, loaded.texts.get(obj.source.file))
        line = lines.line_of(diag.path) if lines is not None else None
        return diag.located(file=obj.source.file, line=line or obj.source.line)
    return diag


def _context_lines(obj: ContextObject, text: str | None) -> Lines | None:
    """The line map of a context object's document (or `kind: List` item) in its file's
    text; None when the text is not at hand or no longer holds it."""
    if text is None:
        return None
    try:
        documents = read_documents(text, filename=obj.source.file)
    except SMIError:
        return None
    for doc in documents:
        if doc.index == obj.source.index:
            return _lines_of(obj.raw, doc.value, doc.lines)
    return None


def _lines_of(raw: Mapping[str, Any], value: Any, lines: Lines | None) -> Lines | None:
    """The lines of the object equal to `raw` within `value`: the value itself, or an item
    of a `List` or `<Kind>List` (whose items may leave out the list's apiVersion and kind)."""
    if lines is None or not isinstance(value, dict):
        return None
    if value == raw:
        return lines
    items, kind = value.get("items"), value.get("kind")
    if not isinstance(items, list) or not isinstance(kind, str) or not kind.endswith("List"):
        return None
    typed = {} if kind == "List" else {"apiVersion": value.get("apiVersion"), "kind": kind[:-4]}
    for i, item in enumerate(items):
        whole = {**typed, **item} if isinstance(item, dict) else item
        found = _lines_of(raw, whole, lines.sub(("items", i)))
        if found is not None:
            return found
    return None


# --- get ----------------------------------------------------------------------------------------


def register_get(sub: Any) -> None:
    p = sub.add_parser("get", help="list resources in the local control plane")
    p.add_argument(
        "kind", type=_kind, help="kind, plural, lower-case or short name (ts, trafficsplits, all)"
    )
    # None when not given: argparse would run `_name` on a string default.
    p.add_argument(
        "name",
        nargs="?",
        default=None,
        type=_name,
        help="one object of the kind (default: every one)",
    )
    p.add_argument(
        "-n",
        "--namespace",
        default="default",
        type=flags.namespace,
        help="the namespace to list (default: %(default)s)",
    )
    p.add_argument("-A", "--all-namespaces", action="store_true", help="list every namespace")
    p.add_argument(
        "-o",
        "--output",
        choices=["table", "yaml", "json"],
        default="table",
        help="table, or the objects as a YAML or JSON List (one object with NAME) "
        "(default: %(default)s)",
    )
    _client_flags(p)
    p.set_defaults(func=run_get)


# Every kind the store holds (the SMI kinds and the context kinds): the workload kinds past
# Deployment were stored, listed by `get all`, and could be neither listed nor deleted by name.
KNOWN_KINDS = (*SMI_KIND_GROUPS, *CONTEXT_KINDS)
# kubectl's short names: the SMI CRDs' `shortNames` (charts/smictl/crds, as smi-sdk-go ships
# them) and Kubernetes' own for the context kinds.
SHORT_NAMES: Mapping[str, str] = {
    "tt": "TrafficTarget",
    "htr": "HTTPRouteGroup",
    "tr": "TCPRoute",
    "ur": "UDPRoute",
    "ts": "TrafficSplit",
    "svc": "Service",
    "sa": "ServiceAccount",
    "ns": "Namespace",
    "po": "Pod",
    "deploy": "Deployment",
    "sts": "StatefulSet",
    "ds": "DaemonSet",
    "rs": "ReplicaSet",
    "rc": "ReplicationController",
    "cj": "CronJob",
}


def kind_of(text: str) -> str:
    """`trafficsplits`, `TrafficSplit`, `trafficsplit`, `ts` -> `TrafficSplit`; `all` -> ""."""
    lower = text.lower()
    if lower == "all":
        return ""
    if lower in SHORT_NAMES:
        return SHORT_NAMES[lower]
    for kind in KNOWN_KINDS:
        k = kind.lower()
        if lower in {k, k + "s", k + "es"}:
            return kind
    short = {kind: name for name, kind in SHORT_NAMES.items()}
    known = ", ".join(f"{k} ({short[k]})" if k in short else k for k in KNOWN_KINDS)
    raise SMIError(Diagnostic("SMI1007", f"unknown kind {text!r}; one of all, {known}"))


def _kind(text: str) -> str:
    """argparse type of KIND: a type nobody serves is a mistake in the command line (exit 2,
    as the README promises for usage errors), not a problem of the store's contents."""
    try:
        return kind_of(text)
    except SMIError as exc:
        raise argparse.ArgumentTypeError(exc.diagnostics[0].format()) from exc


def _one_kind(text: str) -> str:
    """`_kind` for `delete KIND NAME`, which deletes one object, so needs one kind."""
    kind = _kind(text)
    if not kind:
        raise argparse.ArgumentTypeError("delete needs one kind, not 'all' (SMI1007)")
    return kind


def _name(text: str) -> str:
    """argparse type of NAME: `get KIND ''` listed every object of the kind, as if no name
    had been given (kubectl: "resource name may not be empty")."""
    if not text:
        raise argparse.ArgumentTypeError("resource name may not be empty (SMI1009)")
    return text


def run_get(args: argparse.Namespace) -> int:
    kind = args.kind
    query = {"kind": kind, "name": args.name or ""}
    if not args.all_namespaces and kind != "Namespace":
        query["namespace"] = args.namespace
    reply = _client(args).request(
        "GET", "/apis/smictl.io/v1/objects", query={k: v for k, v in query.items() if v}
    )
    if reply.status != 200:
        raise refused(reply)
    items = reply.body.get("items")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise not_a_control_plane(reply.server, "HTTP 200 without a list of items")
    if args.name and not items:
        raise SMIError(Diagnostic("SMI7004", f"{kind or 'object'} {args.name!r} not found"))
    if args.output == "json":
        doc: Any = items[0] if args.name else {"apiVersion": "v1", "kind": "List", "items": items}
        print(json.dumps(doc, indent=2))
    elif args.output == "yaml":
        doc = items[0] if args.name else {"apiVersion": "v1", "kind": "List", "items": items}
        print(yaml.dump(doc, Dumper=Dumper, sort_keys=False), end="")
    elif items:
        print(table(items))
    else:
        print(_none_found(query.get("namespace")))
    return EXIT_OK


def _none_found(namespace: str | None) -> str:
    """kubectl's words for an empty list, which name the namespace looked in: `No resources
    found.` alone read as "the store is empty" when only `-n` (default: default) was wrong."""
    if namespace is None:  # -A, or the cluster-scoped Namespace
        return "No resources found."
    return f"No resources found in {namespace} namespace."


def table(items: Sequence[dict[str, Any]]) -> str:
    rows = [("KIND", "NAMESPACE", "NAME", "APIVERSION", "REVISION")]
    for it in items:
        meta = it.get("metadata") or {}
        rows.append(
            (
                str(it.get("kind", "")),
                str(meta.get("namespace", "")),
                str(meta.get("name", "")),
                str(it.get("apiVersion", "")),
                str(meta.get("resourceVersion", "")),
            )
        )
    if len(rows) == 1:
        return "No resources found."
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


# --- delete -------------------------------------------------------------------------------------


def register_delete(sub: Any) -> None:
    p = sub.add_parser("delete", help="delete resources from the local control plane")
    p.add_argument("kind", nargs="?", type=_one_kind, help="kind (with NAME), or use -f")
    p.add_argument("name", nargs="?", type=_name)
    p.add_argument("-f", "--filename", action="append", type=flags.path_text, metavar="PATH")
    _namespace_flag(p)
    p.add_argument("--ignore-not-found", action="store_true")
    _client_flags(p)
    p.set_defaults(func=run_delete)


def run_delete(args: argparse.Namespace) -> int:
    loaded = Loaded()
    if args.filename and args.kind:
        return _usage("delete", "give either -f PATH or KIND NAME, not both")
    if args.filename:
        loaded = _distinct(_references(args.filename, namespace=args.namespace))
        items = [_reference(o) for o in loaded.objects]
    elif args.kind and args.name:
        items = [{"kind": args.kind, "name": args.name, "namespace": args.namespace or "default"}]
    else:
        return _usage("delete", "give -f PATH or KIND NAME")
    reply = _client(args).request(
        "POST",
        "/apis/smictl.io/v1/delete",
        body={"items": items, "ignoreNotFound": args.ignore_not_found},
    )
    return _report(reply, loaded, output="text")


def _usage(command: str, message: str) -> int:
    """A mistake in the shape of the command line, as argparse reports one (exit 2)."""
    print(f"smictl {command}: error: {message} (see `smictl {command} --help`)", file=sys.stderr)
    return EXIT_USAGE


def _references(paths: Sequence[str], *, namespace: str | None) -> Loaded:
    """The identity of every object in `paths`, or SMIError with every problem."""
    loaded = _read(paths, namespace=namespace, load=load_identities, then="nothing deleted")
    if problems := _other_namespaces(loaded, namespace):
        raise SMIError(problems)
    return loaded


def _distinct(loaded: Loaded) -> Loaded:
    """Each object once, where it first appears. A delete reads only identities, so a file
    `apply` takes with an object written twice (identical copies are one object, SMI3008)
    deletes it once; the store refuses a key given twice in one delete, which would report
    the object deleted twice. Keyed as the store keys it (API group, not version)."""
    seen: set[ObjectKey] = set()
    kept: list[Sent] = []
    for obj in loaded.objects:
        namespace = "" if obj.kind in CLUSTER_SCOPED_KINDS else (obj.namespace or "default")
        key = ObjectKey(obj.api_version.rpartition("/")[0], obj.kind, namespace, obj.name)
        if key not in seen:
            seen.add(key)
            kept.append(obj)
    return replace(loaded, objects=kept)


def _reference(obj: Sent) -> dict[str, Any]:
    return {
        "apiVersion": obj.api_version,
        "kind": obj.kind,
        "name": obj.name,
        "namespace": obj.namespace,
    }

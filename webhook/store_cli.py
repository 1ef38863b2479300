"""`smictl apply`, `smictl get`, `smictl delete`: the local store over HTTPS (`smictl serve`).

Files are loaded here first (`smi.loading`), so a syntax error is reported with file and line
before anything is sent. The server's refusals come back with the index of each object and
diagnostics with JSON paths; they are printed as `file:line: path: reason (CODE)` at the line of
the object in the file it came from.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from smi.commands import flags
from smi.errors import Diagnostic, SMIError
from smi.loading import SMI_KIND_GROUPS, ContextObject, LoadResult, Resource, load_text
from smi.sources import Lines, read_documents, read_path
from smi.store.base import CLUSTER_SCOPED_KINDS, ObjectKey
from smi.yamlout import Dumper
from webhook.client import (
    DEFAULT_SERVER,
    DEFAULT_TIMEOUT,
    ControlPlaneClient,
    Reply,
    not_a_control_plane,
    refused,
)

EXIT_OK, EXIT_INVALID = 0, 1


def _client_flags(p: argparse.ArgumentParser) -> None:
    import os

    p.add_argument(
        "--server",
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
    p.add_argument(
        "-f", "--filename", action="append", required=True, type=flags.path_text, metavar="PATH"
    )
    p.add_argument("--dry-run", action="store_true", help="admit only; store nothing")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    _client_flags(p)
    p.set_defaults(func=run_apply)


@dataclass(frozen=True)
class Loaded:
    """The objects read from the files, in the order sent, and each file's text: a context
    object (a Service) keeps no line map, and the server's refusal of one of its fields is
    located by reading its document's lines from that text, not only when it is a file that
    could be read again (standard input cannot)."""

    objects: Sequence[Resource | ContextObject] = ()
    texts: Mapping[str, str] = field(default_factory=dict)


def _loaded(paths: Sequence[str]) -> Loaded:
    result = LoadResult()
    texts: dict[str, str] = {}
    for path in paths:
        for name, text, problem in read_path(path, stdin=None):
            if problem is not None:
                result.diagnostics.append(problem)
                continue
            texts[name] = text
            result.extend(load_text(text, filename=name))
    for d in result.diagnostics:
        if not d.is_error:
            print(d.format(), file=sys.stderr)
    if not result.ok:
        raise SMIError([d for d in result.diagnostics if d.is_error])
    objects: list[Resource | ContextObject] = [*result.resources, *result.context]
    objects.sort(key=lambda o: (o.source.file, o.source.index))
    if not objects:
        # Nothing loaded, or only kinds the loader skips: sending an empty set is what a
        # pipeline whose first stage printed nothing would do (`kubectl apply` refuses it too).
        raise SMIError(Diagnostic("SMI1012", f"no objects to send in {', '.join(paths)}"))
    return Loaded(objects=objects, texts=texts)


def run_apply(args: argparse.Namespace) -> int:
    loaded = _loaded(args.filename)
    reply = _client(args).request(
        "POST",
        "/apis/smictl.io/v1/apply",
        body={"items": [dict(o.raw) for o in loaded.objects], "dryRun": args.dry_run},
    )
    return _report(reply, loaded, output=args.output)


def _report(reply: Reply, loaded: Loaded, *, output: str) -> int:
    if output == "json":
        json.dump(reply.body, sys.stdout, indent=2)
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
    p.add_argument("kind", help="kind, plural or lower-case (trafficsplit, trafficsplits, all)")
    # None when not given: argparse would run `_name` on a string default.
    p.add_argument("name", nargs="?", default=None, type=_name)
    p.add_argument("-n", "--namespace", default="default", type=flags.namespace)
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-o", "--output", choices=["table", "yaml", "json"], default="table")
    _client_flags(p)
    p.set_defaults(func=run_get)


KNOWN_KINDS = (*SMI_KIND_GROUPS, "Service", "ServiceAccount", "Namespace", "Pod", "Deployment")


def kind_of(text: str) -> str:
    """`trafficsplits`, `TrafficSplit`, `trafficsplit` -> `TrafficSplit`; `all` -> ""."""
    lower = text.lower()
    if lower == "all":
        return ""
    for kind in KNOWN_KINDS:
        k = kind.lower()
        if lower in {k, k + "s", k + "es"}:
            return kind
    raise SMIError(Diagnostic("SMI1007", f"unknown kind {text!r}; one of {', '.join(KNOWN_KINDS)}"))


def _name(text: str) -> str:
    """argparse type of NAME: `get KIND ''` listed every object of the kind, as if no name
    had been given (kubectl: "resource name may not be empty")."""
    if not text:
        raise argparse.ArgumentTypeError("resource name may not be empty (SMI1009)")
    return text


def run_get(args: argparse.Namespace) -> int:
    kind = kind_of(args.kind)
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
    else:
        print(table(items))
    return EXIT_OK


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
    p.add_argument("kind", nargs="?", help="kind (with NAME), or use -f")
    p.add_argument("name", nargs="?", type=_name)
    p.add_argument("-f", "--filename", action="append", type=flags.path_text, metavar="PATH")
    p.add_argument("-n", "--namespace", default="default", type=flags.namespace)
    p.add_argument("--ignore-not-found", action="store_true")
    _client_flags(p)
    p.set_defaults(func=run_delete)


def run_delete(args: argparse.Namespace) -> int:
    loaded = Loaded()
    if args.filename:
        if args.kind:
            raise SMIError(Diagnostic("SMI7002", "give either -f PATH or KIND NAME, not both"))
        loaded = _loaded(args.filename)
        _refuse_duplicates(loaded)
        items = [_reference(o) for o in loaded.objects]
    elif args.kind and args.name:
        kind = kind_of(args.kind)
        if not kind:
            raise SMIError(Diagnostic("SMI1007", "delete needs one kind, not 'all'"))
        items = [{"kind": kind, "name": args.name, "namespace": args.namespace}]
    else:
        raise SMIError(Diagnostic("SMI7002", "delete needs -f PATH or KIND NAME"))
    reply = _client(args).request(
        "POST",
        "/apis/smictl.io/v1/delete",
        body={"items": items, "ignoreNotFound": args.ignore_not_found},
    )
    return _report(reply, loaded, output="text")


def _refuse_duplicates(loaded: Loaded) -> None:
    """SMI2007 at each repeat of an object, as `apply` refuses one: deleting it "twice" would
    report it deleted twice. Keyed as the store keys it (API group, not version)."""
    seen: set[ObjectKey] = set()
    problems: list[Diagnostic] = []
    for index, obj in enumerate(loaded.objects):
        namespace = "" if obj.kind in CLUSTER_SCOPED_KINDS else (obj.namespace or "default")
        key = ObjectKey(obj.api_version.rpartition("/")[0], obj.kind, namespace, obj.name)
        if key in seen:
            repeat = {"code": "SMI2007", "message": f"{key} appears twice in one delete",
                      "path": "metadata.name", "index": index}  # fmt: skip
            problems.append(_locate(repeat, loaded))
        seen.add(key)
    if problems:
        raise SMIError(problems)


def _reference(obj: Resource | ContextObject) -> dict[str, Any]:
    return {
        "apiVersion": obj.api_version,
        "kind": obj.kind,
        "name": obj.name,
        "namespace": obj.namespace,
    }

"""The admission chain: built-in validation, then Rego policies, with Gatekeeper's answers.

`admit(request, policies)` is what the webhook calls with an AdmissionReview's `request`, and
`admit_loaded(load, policies)` what `smictl admit` calls for files (each object as a CREATE,
the other objects of the files as the inventory). Both end in the same `_decide`:

    load the object (smi.loading) and check it (smi.compiler.checks.validate, the one
    validation path); any error                 -> 422 Invalid, one line per field path
                                                   (at most MAX_FIELD_LINES, then a count)
    else evaluate every applicable policy:
        a deny policy's violation               -> 403 Forbidden, "[policy] message" lines
        a deny policy that fails to evaluate    -> 403 as well (fail closed, SMI5003)
        a warn policy's violation or failure    -> a warning, admitted
    built-in warnings (dangling references, a pathRegex without end anchor, ...) -> warnings,
        but not those whose code an evaluated policy `replaces` (METADATA): it said the same
    otherwise                                   -> 200 allowed

An invalid object is not shown to the policies (as in Kubernetes, where schema validation runs
before admission webhooks): the hub form they expect does not exist for it. A DELETE is not
validated; policies see it with `input.hub` null and `input.oldHub` set. The request's `uid` is
echoed in every result.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from smi.compiler.checks import validate, validate_subjects
from smi.errors import (
    MAX_PATH_CHARS,
    Diagnostic,
    errors_of,
    escaped_line,
    first_lines,
    warnings_of,
)
from smi.loading import LoadResult, Resource, Source, load_object
from smi.policy.engine import EVAL_FAILED
from smi.policy.input import (
    EMPTY_INVENTORY,
    Inventory,
    create_request,
    hub_document,
    input_document,
    namespaces_in,
)
from smi.policy.policyset import PolicyDecision, PolicySet
from smi.resources import Refused

AdmissionRequestLike = Mapping[str, Any]

ALLOWED, FORBIDDEN, INVALID = 200, 403, 422

# What one policy may put into an answer: its messages are one line each (a newline would
# forge a line of another policy), at most MAX_MESSAGE characters, at most MAX_VIOLATIONS per
# policy (the rest are counted in one line), so the AdmissionReview answer stays small.
MAX_MESSAGE = 1000
MAX_VIOLATIONS = 100
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SURROGATE = re.compile("[\ud800-\udfff]")

# What the checks put into a 422 answer, which the API server relays whole to the user and the
# audit log: each field line escaped (it quotes user input: a newline would forge a line) and at
# most MAX_MESSAGE characters; at most MAX_FIELD_LINES lines and MAX_FIELD_LINES_TOTAL
# characters, the rest counted in one last line. `smictl validate` lists them all.
MAX_FIELD_LINES = 50
MAX_FIELD_LINES_TOTAL = 10_000
# Line breaks `escaped_line` leaves alone (it escapes C0 controls and surrogates): C1 controls
# (NEL) and the Unicode line and paragraph separators, which some readers break lines at.
_LINE_BREAKS = re.compile("[\x80-\x9f\u2028\u2029]")


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """A policy's text as one printable line: control characters and line separators become a
    space, lone surrogates (valid JSON escapes, unprintable UTF-8) U+FFFD; cut at `limit`."""
    flat = _SURROGATE.sub("\ufffd", _UNPRINTABLE.sub(" ", text))
    return flat if len(flat) <= limit else flat[: limit - 1] + "\u2026"


@dataclass(frozen=True)
class AdmissionResult:
    """The verdict on one object, as the API server and `smictl admit` need it."""

    uid: str
    allowed: bool
    code: int
    messages: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    object_ref: str = ""
    source: Source | None = field(default=None, compare=False)

    @property
    def reason(self) -> str:
        return {ALLOWED: "", FORBIDDEN: "Forbidden", INVALID: "Invalid"}.get(self.code, "")

    @property
    def verdict(self) -> str:
        return {ALLOWED: "allowed", FORBIDDEN: "denied", INVALID: "invalid"}.get(self.code, "")

    def to_response(self) -> dict[str, Any]:
        """The AdmissionReview `response` (admission.k8s.io/v1)."""
        response: dict[str, Any] = {"uid": self.uid, "allowed": self.allowed}
        if not self.allowed:
            status: dict[str, Any] = {
                "code": self.code,
                "reason": self.reason,
                "message": "\n".join(self.messages),
            }
            if self.code == INVALID:
                errors = errors_of(self.diagnostics)[:MAX_FIELD_LINES]
                status["details"] = {"causes": [_cause(d) for d in errors]}
            response["status"] = status
        if self.warnings:
            response["warnings"] = list(self.warnings)
        return response

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "object": self.object_ref,
            "file": self.source.file if self.source else None,
            "line": self.source.line if self.source else None,
            "verdict": self.verdict,
            "allowed": self.allowed,
            "code": self.code,
            "messages": list(self.messages),
            "warnings": list(self.warnings),
            "diagnostics": [d.to_json() for d in self.diagnostics],
        }


def _cause(d: Diagnostic) -> dict[str, str]:
    return {
        "field": _visible(d.path, MAX_PATH_CHARS),
        "message": f"{_visible(d.message, MAX_MESSAGE)} ({d.code})",
        "reason": "FieldValueInvalid",
    }


def admit(
    request: AdmissionRequestLike,
    policies: PolicySet,
    *,
    inventory: Inventory = EMPTY_INVENTORY,
    strict: bool = False,
) -> AdmissionResult:
    """Decide one AdmissionRequest (the `request` of an AdmissionReview, as a dict)."""
    uid = str(request.get("uid") or "")
    namespace = str(request.get("namespace") or "default")
    old_hub = _hub_of(request.get("oldObject"), namespace=namespace)
    if str(request.get("operation") or "CREATE") == "DELETE":
        return _decide_policies(
            request,
            policies,
            uid=uid,
            hub=None,
            old_hub=old_hub,
            inventory=inventory,
            resource=None,
            found=(),
        )
    obj = request.get("object")
    if not isinstance(obj, Mapping):
        diag = Diagnostic(code="SMI1003", message="request.object is not an object")
        return _invalid(uid, [diag], object_ref="", source=None)
    loaded = load_object(obj, filename="<request>", default_namespace=namespace)
    if not loaded.ok or not loaded.resources:
        return _not_smi(uid, loaded)
    resource = loaded.resources[0]
    found = validate_subjects(inventory.validation_index, [resource], strict=strict)
    return _decide(
        request, policies, resource=resource, found=found, old_hub=old_hub, inventory=inventory
    )


def admit_loaded(
    load: LoadResult, policies: PolicySet, *, strict: bool = False, username: str = "smictl"
) -> tuple[list[AdmissionResult], list[Diagnostic]]:
    """Decide every SMI object of loaded files, each as a CREATE against all the others, an
    object that did not load (`load.refused`) as invalid with its load problems; and the
    rest: the load's other problems and the warnings of the set's context objects (identical
    copies of a Service or a workload, SMI3008, as `validate` gives them), which no object is
    admitted for, so they are notes beside the results."""
    inventory = Inventory.of(load.resources, load.context)
    found = validate(load.resources, load.context, strict=strict)
    grouped: dict[tuple[str, str | None], list[Diagnostic]] = {}
    for d in found:
        grouped.setdefault((d.object_ref, d.file), []).append(d)
    copies: dict[tuple[str, str | None], list[Resource]] = {}
    for r in load.resources:
        copies.setdefault((r.key, r.source.file), []).append(r)
    results: list[AdmissionResult] = []
    for r in load.resources:
        request = create_request(r, uid=_uid(r), username=username)
        mine = grouped.get((r.key, r.source.file), [])
        siblings = copies[(r.key, r.source.file)]
        if len(siblings) > 1 and mine:
            mine = [d for d in mine if _copy_of(d, siblings) is r]
        results.append(
            _decide(request, policies, resource=r, found=mine, old_hub=None, inventory=inventory)
        )
    notes = _refused_results(load, results)
    # What is left belongs to no SMI object: two different copies of a Service or a workload
    # (SMI3008), which `validate` refuses and `smictl apply` too. Dropped here, `admit` passed
    # a set whose MeshPolicy depends on the order of its files.
    for ctx in load.context:
        mine = grouped.pop((ctx.key, ctx.source.file), [])  # (once per key and file)
        if errors_of(mine):
            uid = _uid_of(ctx.source, ctx.key)
            results.append(_invalid(uid, mine, object_ref=ctx.key, source=ctx.source))
        else:
            notes.extend(mine)
    return results, notes


_T = TypeVar("_T", Resource, Refused)  # what `_copy_of` chooses among


def _refused_results(load: LoadResult, results: list[AdmissionResult]) -> list[Diagnostic]:
    """An invalid result per object that did not load, with the load problems that name it
    (appended to `results`); the load's other problems, returned. `admit` counted such an
    object as a load error, not as an invalid object, and named no object for its problem,
    where `/validate` answers the same object invalid."""
    by_object: dict[tuple[str, str], list[Refused]] = {}
    for refused in load.refused:
        by_object.setdefault((refused.key, refused.source.file), []).append(refused)
    mine: dict[int, list[Diagnostic]] = {id(r): [] for r in load.refused}
    rest: list[Diagnostic] = []
    for d in load.diagnostics:
        copies = by_object.get((d.object_ref, d.file or "")) if d.object_ref else None
        if copies is None:
            rest.append(d)
        else:
            mine[id(_copy_of(d, copies))].append(d)
    for refused in load.refused:
        uid = _uid_of(refused.source, refused.key)
        found = mine[id(refused)]
        results.append(_invalid(uid, found, object_ref=refused.key, source=refused.source))
    return rest


def _copy_of(diag: Diagnostic, copies: Sequence[_T]) -> _T:
    """Which of the copies of one object in one file a diagnostic is about: the last that
    starts at or before its line (the first, for one without a line). Grouped by object and
    file alone, each copy was given the other's diagnostics too, and `admit` said every one
    twice."""
    line = diag.line
    if line is None:
        return copies[0]
    best = copies[0]
    for r in copies:
        start = r.source.line
        if start is not None and start <= line and (best.source.line or 0) <= start:
            best = r
    return best


def _uid(resource: Resource) -> str:
    return _uid_of(resource.source, resource.key)


def _uid_of(source: Source, key: str) -> str:
    name = f"{source.file}#{source.index}#{key}"
    # A file name that is not UTF-8 holds lone surrogates, which uuid5 cannot encode.
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def _hub_of(doc: Any, *, namespace: str) -> Any:
    if not isinstance(doc, Mapping):
        return None
    loaded = load_object(doc, filename="<oldObject>", default_namespace=namespace)
    return loaded.resources[0].obj if loaded.ok and loaded.resources else None


def _decide(
    request: AdmissionRequestLike,
    policies: PolicySet,
    *,
    resource: Resource,
    found: Sequence[Diagnostic],
    old_hub: Any,
    inventory: Inventory,
) -> AdmissionResult:
    uid = str(request.get("uid") or "")
    if errors_of(found):
        return _invalid(uid, found, object_ref=resource.key, source=resource.source)
    return _decide_policies(
        request,
        policies,
        uid=uid,
        hub=resource.obj,
        old_hub=old_hub,
        inventory=inventory,
        resource=resource,
        found=found,
    )


def _decide_policies(
    request: AdmissionRequestLike,
    policies: PolicySet,
    *,
    uid: str,
    hub: Any,
    old_hub: Any,
    inventory: Inventory,
    resource: Resource | None,
    found: Sequence[Diagnostic],
) -> AdmissionResult:
    kind = resource.kind if resource is not None else _request_kind(request)

    own = resource.namespace if resource is not None else str(request.get("namespace") or "")
    hub_doc = hub_document(hub) if hub is not None else None
    old_doc = hub_document(old_hub) if old_hub is not None else None
    namespaces = namespaces_in(hub_doc if hub_doc is not None else old_doc, own=own)

    def input_for(kinds: Collection[str]) -> Mapping[str, Any]:
        scoped = inventory.document(kinds, namespaces=namespaces) if kinds else {}
        return input_document(request, hub=hub_doc, old_hub=old_doc, inventory=scoped)

    decisions = policies.evaluate(kind=kind, input_for=input_for)
    denials, warned, diags = _policy_lines(decisions, resource=resource)
    builtin = _not_replaced(warnings_of(found), decisions)
    warnings = [_field_line(d) for d in builtin] + warned
    diagnostics = (*builtin, *diags)
    ref = resource.key if resource is not None else _request_ref(request)
    source = resource.source if resource is not None else None
    if denials:
        return AdmissionResult(
            uid, False, FORBIDDEN, tuple(denials), tuple(warnings), diagnostics, ref, source
        )
    return AdmissionResult(uid, True, ALLOWED, (), tuple(warnings), diagnostics, ref, source)


def _not_replaced(
    builtin: Sequence[Diagnostic], decisions: Sequence[PolicyDecision]
) -> list[Diagnostic]:
    """The built-in findings no policy reports itself. A policy whose METADATA `replaces` a
    code reports the same thing at the same field (the shipped path-regex-anchored and SMI2206),
    so the object gets one line per field, and a copy of the policy with `enforcement: deny`
    one denial instead of a denial and a warning. Only a policy that was evaluated for this
    object and did not fail replaces anything: otherwise it said nothing in their place."""
    replaced = {code for d in decisions if d.error is None for code in d.policy.replaces}
    return [d for d in builtin if d.code not in replaced]


def _policy_lines(
    decisions: Sequence[PolicyDecision], *, resource: Resource | None
) -> tuple[list[str], list[str], list[Diagnostic]]:
    denials: list[str] = []
    warned: list[str] = []
    diags: list[Diagnostic] = []
    for d in decisions:
        deny = d.policy.enforcement == "deny"
        shown = d.violations[:MAX_VIOLATIONS]
        items = [(one_line(v.msg), one_line(v.path), d.policy.code) for v in shown]
        if len(d.violations) > len(shown):
            more = len(d.violations) - len(shown)
            items.append((f"... and {more} more violations", "", d.policy.code))
        if d.error is not None:
            items.append((one_line(f"policy evaluation failed: {d.error}"), "", EVAL_FAILED))
        # The name is the policy's directory, which may hold any character a file name can.
        name = one_line(d.policy.name)
        for msg, path, code in items:
            line = f"[{name}] {msg}"
            (denials if deny else warned).append(line)
            diag = Diagnostic(
                code=code, message=line, path=path, severity="error" if deny else "warning"
            )
            diags.append(resource.locate(diag) if resource is not None else diag)
    return denials, warned, diags


def _invalid(
    uid: str, found: Sequence[Diagnostic], *, object_ref: str, source: Source | None
) -> AdmissionResult:
    errors = errors_of(found)
    return AdmissionResult(
        uid=uid,
        allowed=False,
        code=INVALID,
        messages=bounded_lines([_field_line(d) for d in errors]),
        warnings=tuple(_field_line(d) for d in warnings_of(found)),
        diagnostics=tuple(found),
        object_ref=object_ref,
        source=source,
    )


def _not_smi(uid: str, loaded: LoadResult) -> AdmissionResult:
    """The object did not load as an SMI resource: invalid if it is broken, else let through
    (the webhook is registered for SMI kinds only; anything else is not ours to judge)."""
    if not loaded.ok:
        return _invalid(uid, loaded.diagnostics, object_ref="", source=None)
    warnings = tuple(_field_line(d) for d in warnings_of(loaded.diagnostics))
    return AdmissionResult(uid, True, ALLOWED, (), warnings, tuple(loaded.diagnostics))


def _field_line(d: Diagnostic) -> str:
    """`spec.backends[1].weight: reason (SMI2103)`: one line per field path, user input in it
    escaped as `smictl validate` prints it (`\\n`), a long path or reason cut, the code kept."""
    path = f"{_visible(d.path, MAX_PATH_CHARS)}: " if d.path else ""
    return f"{_visible(path + d.message, MAX_MESSAGE)} ({d.code})"


def _visible(text: str, limit: int) -> str:
    """`text` on one line, control characters and line separators as visible escapes, cut at
    `limit` characters with an ellipsis."""
    line = _LINE_BREAKS.sub(lambda m: repr(m.group())[1:-1], escaped_line(text))
    return line if len(line) <= limit else line[: limit - 1] + "\u2026"


def problem_lines(result: AdmissionResult) -> tuple[str, ...]:
    """Every problem line of a refusal, before the answer's bound: what validation ratcheting
    compares (webhook.admission), where the bounded `messages` could hide a problem an update
    swapped for another behind the same "... and N more"."""
    if result.code == INVALID and result.diagnostics:
        return tuple(_field_line(d) for d in errors_of(result.diagnostics))
    return result.messages


def bounded_lines(lines: Sequence[str]) -> tuple[str, ...]:
    """The first lines of a 422 answer, within MAX_FIELD_LINES and MAX_FIELD_LINES_TOTAL
    characters, then how many were left out and where to see them."""
    kept, more = first_lines(lines, most=MAX_FIELD_LINES, chars=MAX_FIELD_LINES_TOTAL)
    if more:
        kept.append(f"... and {more} more (run smictl validate for all)")
    return tuple(kept)


def _request_kind(request: AdmissionRequestLike) -> str:
    kind = request.get("kind")
    return str(kind.get("kind", "")) if isinstance(kind, Mapping) else ""


def _request_ref(request: AdmissionRequestLike) -> str:
    return f"{_request_kind(request)}/{request.get('namespace') or ''}/{request.get('name') or ''}"

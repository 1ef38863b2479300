"""Hard checks and warnings for specs.smi-spec.io: HTTPRouteGroup, TCPRoute, UDPRoute.

Match names are the keys TrafficTargets refer to (unique); methods come from the CRD's enum,
uppercase; every regex must be RE2 (matching stays linear in the input); header names are
case-insensitive and unique, and HTTP field names (an RFC 9110 token): no request carries
`x team` or `:path`, so a condition on one could never hold, and a match that can never match
in an allow rule is a policy bug (SMI2207). `:authority` is the exception: it is the Host
header of an HTTP/1.1 request, and the hub holds it as `host` (SMI2208 says so). Paths follow
the wire layout: flat `matches[0]` in v1alpha1 and v1alpha2, `spec.matches[0]` later; a header
is `headers[1]` in the list form and `headers.user-agent` in the map form, as the document
wrote it. Headers (specs v1alpha1) and TCP ports (before v1alpha4) that the lossy-fields
annotation restores out of the manifest's sight are named (SMI4005, as for a TrafficTarget's
destination port). A TCPRoute/UDPRoute v1alpha4 `spec` without `matches.ports` means every
port, as the spec says, but the published CRD refuses it (SMI2303).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from smi.apis.lossy import carries_annotation
from smi.apis.specs import hub
from smi.apis.specs.common import GROUP_NARROWING, ROUTE_NARROWING
from smi.errors import Diagnostic, Severity
from smi.ports import is_port, not_a_port
from smi.regexcost import cost_problem
from smi.validation.access import restored_restrictions
from smi.validation.names import HTTP_TOKEN, duplicates, error, show, warning
from smi.validation.regex import (
    end_anchored,
    longer_path_example,
    matches_no_path,
    re2_problem,
)
from smi.yamlpos import join_path

if TYPE_CHECKING:
    from smi.loading import Resource

_FLAT_VERSIONS = frozenset({"v1alpha1", "v1alpha2"})
_METHODS = frozenset(hub.HTTP_METHODS)
_PORTS_VERSION = "specs.smi-spec.io/v1alpha4"


def check_route_group(resource: Resource) -> list[Diagnostic]:
    group: hub.HTTPRouteGroup = resource.obj
    flat = resource.api_version.rpartition("/")[2] in _FLAT_VERSIONS
    path = "matches" if flat else "spec.matches"
    out: list[Diagnostic] = []
    if not group.matches:
        out.append(error("SMI2201", "at least one match is needed", path=path))
    for i, name in duplicates(m.name for m in group.matches):
        out.append(error("SMI2202", f"match name {name!r} is used twice", path=f"{path}[{i}].name"))
    for i, match in enumerate(group.matches):
        if match.methods and not _METHODS.issuperset(match.methods):
            _methods(out, match.methods, path=f"{path}[{i}]")
        if match.path_regex is not None:
            _path_regex(out, match.path_regex, path=f"{path}[{i}]")
        if match.headers:
            written = _raw_match(resource.raw, flat=flat, index=i).get("headers")
            count = len(match.headers)
            found = _header_problems(match.headers, _written_names(written, count=count))
            if found:
                paths = _header_paths(written, path=f"{path}[{i}].headers", count=count)
                out.extend(
                    Diagnostic(code=code, message=message, path=paths[j], severity=severity)
                    for j, severity, code, message in found
                )
    if carries_annotation(resource.raw):
        out += restored_restrictions(resource, GROUP_NARROWING)
    return out


def _raw_match(raw: Mapping[str, Any], *, flat: bool, index: int) -> Mapping[str, Any]:
    """The match as written (the form of its headers decides their wire paths)."""
    holder: Any = raw if flat else raw.get("spec")
    matches = holder.get("matches") if isinstance(holder, Mapping) else None
    match = matches[index] if isinstance(matches, list) and index < len(matches) else None
    return match if isinstance(match, Mapping) else {}


def _methods(out: list[Diagnostic], methods: tuple[str, ...], *, path: str) -> None:
    for j, method in enumerate(methods):
        if method not in _METHODS:
            hint = f"; write {method.upper()!r}" if method.upper() in _METHODS else ""
            out.append(
                error(
                    "SMI2203",
                    f"method {method!r} is not one of {', '.join(hub.HTTP_METHODS)}{hint}",
                    path=f"{path}.methods[{j}]",
                )
            )


def _path_regex(out: list[Diagnostic], regex: str, *, path: str) -> None:
    """`path` is the match's; the field's path is formatted only when there is a finding."""
    problem = re2_problem(regex)
    if problem is not None:
        out.append(
            error(
                "SMI2204",
                f"pathRegex {show(regex)} is not RE2 syntax: {problem}",
                path=f"{path}.pathRegex",
            )
        )
    elif (costly := cost_problem(regex)) is not None:
        out.append(
            error(
                "SMI2209",
                f"pathRegex {show(regex)} is too costly to match: {costly}",
                path=f"{path}.pathRegex",
            )
        )
    elif not regex:
        # The proxy matches it like a missing pathRegex (every path starts with ""): likely a
        # template that rendered nothing, so it is named, not told to end with `$`.
        out.append(
            warning(
                "SMI2206",
                "'' matches every path, as if pathRegex were absent; remove it, or write .* "
                "to say so",
                path=f"{path}.pathRegex",
            )
        )
    elif matches_no_path(regex):
        # An end anchor with text after it: end-anchored, but not what SMI2206 would ask for.
        out.append(
            warning(
                "SMI2210",
                f"{show(regex)} matches no path: it asks for more after the end ($ or \\z); "
                "put the anchor last, or write \\$ for a literal $",
                path=f"{path}.pathRegex",
            )
        )
    elif not end_anchored(regex):
        # Matched at the start only (the SMI spec); a concrete longer path it lets through says
        # so better than the rule, and the regex is quoted once to keep the line short (the
        # API server may cut admission warnings past 120 characters).
        example = longer_path_example(regex)
        longer = f"longer paths ({example})" if example else "longer paths"
        literal = ": \\$ is a literal $" if regex.endswith("\\$") else ""
        out.append(
            warning(
                "SMI2206",
                f"{show(regex)} also matches {longer}{literal}; end it with $, / or .*",
                path=f"{path}.pathRegex",
            )
        )


def _header_problems(
    headers: tuple[tuple[str, str], ...], written: list[str] | None
) -> list[tuple[int, Severity, str, str]]:
    """(header index, severity, code, message): names that are no HTTP field name, an
    `:authority` read as `host`, names given twice (case-insensitive, `:authority` being
    `host`) and regexes RE2 cannot run. `written` holds the names as the document wrote them
    (None when it does not show the headers the hub has): the hub's are lower-case, and
    `:authority` is `host` there."""
    found: list[tuple[int, Severity, str, str]] = []
    seen: set[str] = set()
    for i, (name, regex) in enumerate(headers):
        shown = written[i] if written is not None else name
        if shown.lower() == hub.AUTHORITY:
            found.append(
                (i, "warning", "SMI2208", f"header {shown!r} is read as 'host' (the Host header)")
            )
        elif HTTP_TOKEN.fullmatch(shown) is None:
            found.append((i, "error", "SMI2207", _not_a_field_name(shown)))
        if name in seen:
            authority = written is not None and hub.AUTHORITY in (n.lower() for n in written)
            also = " and :authority is host" if name == "host" and authority else ""
            found.append(
                (
                    i,
                    "error",
                    "SMI2205",
                    f"header {name!r} is given twice (header names are case-insensitive{also})",
                )
            )
        seen.add(name)
        problem = re2_problem(regex)
        if problem is not None:
            found.append(
                (
                    i,
                    "error",
                    "SMI2204",
                    f"header {name!r}: {show(regex)} is not RE2 syntax: {problem}",
                )
            )
        elif (costly := cost_problem(regex)) is not None:
            found.append(
                (i, "error", "SMI2209", f"header {name!r}: {show(regex)} is too costly: {costly}")
            )
    return found


def _not_a_field_name(name: str) -> str:
    # Beyond ASCII a name reads as the letter it looks like (the Kelvin sign as `K`): escaped.
    quoted = show(name) if name.isascii() else ascii(name)
    what = "the header name is empty" if not name else f"{quoted} is not an HTTP field name"
    return f"{what}: no request carries it, so this match can never match"


def _written_names(raw: Any, *, count: int) -> list[str] | None:
    """The header names as written, in document order, or None when the document does not
    hold the hub's `count` headers (the lossy-fields annotation restored them)."""
    if isinstance(raw, Mapping):
        names = [str(name) for name in raw]
    elif isinstance(raw, list):
        names = [str(n) for entry in raw if isinstance(entry, Mapping) for n in entry]
    else:
        return None
    return names if len(names) == count else None


def _header_paths(raw: Any, *, path: str, count: int) -> list[str]:
    """Wire path of each header, in document order (the order the hub keeps)."""
    if isinstance(raw, Mapping) and len(raw) == count:
        return [join_path(path, str(name)) for name in raw]
    return [f"{path}[{j}]" for j in range(count)]


def check_l4_route(resource: Resource) -> list[Diagnostic]:
    route: hub.TCPRoute | hub.UDPRoute = resource.obj
    path = "spec.matches.ports"
    out: list[Diagnostic] = []
    for i, port in enumerate(route.ports):
        if not is_port(port):
            out.append(error("SMI2301", not_a_port(port), path=f"{path}[{i}]"))
    for i, text in duplicates([str(p) for p in route.ports]) if len(route.ports) > 1 else ():
        out.append(error("SMI2302", f"port {text} is listed twice", path=f"{path}[{i}]"))
    if resource.api_version == _PORTS_VERSION:
        omitted = _omitted_ports(resource.raw)
        if omitted is not None:
            out.append(
                warning(
                    "SMI2303",
                    "no ports: every port is allowed, but the SMI CRD requires "
                    "spec.matches.ports and the API server refuses this; write ports: []",
                    path=omitted,
                )
            )
    if carries_annotation(resource.raw):
        out += restored_restrictions(resource, ROUTE_NARROWING)
    return out


def _omitted_ports(raw: Mapping[str, Any]) -> str | None:
    """Where a v1alpha4 `spec` as written stops short of `matches.ports` (left out or null),
    or None: no `spec` at all is what the CRD accepts (it requires nothing at the root)."""
    spec = raw.get("spec")
    if not isinstance(spec, Mapping):
        return None
    matches = spec.get("matches")
    if not isinstance(matches, Mapping):
        return "spec" if "matches" not in spec else "spec.matches"
    if matches.get("ports") is None:
        return "spec.matches" if "ports" not in matches else "spec.matches.ports"
    return None

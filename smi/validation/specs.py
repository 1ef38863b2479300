"""Hard checks and warnings for specs.smi-spec.io: HTTPRouteGroup, TCPRoute, UDPRoute.

Match names are the keys TrafficTargets refer to (unique); methods come from the CRD's enum,
uppercase; every regex must be RE2 (matching stays linear in the input); header names are
case-insensitive and unique. Paths follow the wire layout: flat `matches[0]` in v1alpha1 and
v1alpha2, `spec.matches[0]` later; a header is `headers[1]` in the list form and
`headers.user-agent` in the map form, as the document wrote it. Headers (specs v1alpha1) and
TCP ports (before v1alpha4) that the lossy-fields annotation restores out of the manifest's
sight are named (SMI4005, as for a TrafficTarget's destination port).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from smi.apis.lossy import carries_annotation
from smi.apis.specs import hub
from smi.apis.specs.common import GROUP_NARROWING, ROUTE_NARROWING
from smi.errors import Diagnostic
from smi.validation.access import restored_restrictions
from smi.validation.names import duplicates, error, show, warning
from smi.validation.regex import end_anchored, longer_path_example, re2_problem
from smi.yamlpos import join_path

if TYPE_CHECKING:
    from smi.loading import Resource

_FLAT_VERSIONS = frozenset({"v1alpha1", "v1alpha2"})
_METHODS = frozenset(hub.HTTP_METHODS)


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
            found = _header_problems(match.headers)
            if found:
                raw = _raw_match(resource.raw, flat=flat, index=i)
                at = f"{path}[{i}].headers"
                paths = _header_paths(raw.get("headers"), path=at, count=len(match.headers))
                out.extend(error(code, message, path=paths[j]) for j, code, message in found)
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
    elif not end_anchored(regex):
        # Matched at the start only (the SMI spec); a concrete longer path it lets through says
        # so better than the rule, and the regex is quoted once to keep the line short (the
        # API server may cut admission warnings past 120 characters).
        example = longer_path_example(regex)
        longer = f"longer paths ({example})" if example else "longer paths"
        out.append(
            warning(
                "SMI2206",
                f"{show(regex)} also matches {longer}; end it with $, / or .*",
                path=f"{path}.pathRegex",
            )
        )


def _header_problems(headers: tuple[tuple[str, str], ...]) -> list[tuple[int, str, str]]:
    """(header index, code, message): names given twice (case-insensitive) and regexes RE2
    cannot run."""
    found: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    for i, (name, regex) in enumerate(headers):
        if name in seen:
            found.append(
                (
                    i,
                    "SMI2205",
                    f"header {name!r} is given twice (header names are case-insensitive)",
                )
            )
        seen.add(name)
        problem = re2_problem(regex)
        if problem is not None:
            found.append(
                (i, "SMI2204", f"header {name!r}: {show(regex)} is not RE2 syntax: {problem}")
            )
    return found


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
        if not 1 <= port <= 65535:
            out.append(error("SMI2301", f"port {port} is not in 1-65535", path=f"{path}[{i}]"))
    for i, text in duplicates([str(p) for p in route.ports]) if len(route.ports) > 1 else ():
        out.append(error("SMI2302", f"port {text} is listed twice", path=f"{path}[{i}]"))
    if carries_annotation(resource.raw):
        out += restored_restrictions(resource, ROUTE_NARROWING)
    return out

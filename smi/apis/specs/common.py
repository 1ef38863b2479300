"""Wire pieces and conversion helpers shared by the specs.smi-spec.io versions.

HTTP matches are the same in every version except that v1alpha1 has no `headers`. TCPRoute
and UDPRoute v1alpha4 share the `spec.matches.ports` shape, read as the spec reads it: `ports`
or `matches` left out means every port (`PortSpec`).

A match's headers and a route's ports only narrow what a TrafficTarget rule allows, so when
a version cannot show them (headers in v1alpha1, TCP ports before v1alpha4) an edit of that
version's object keeps them from the lossy-fields annotation as long as their match (by
name) or route is there: `MATCH_HEADERS`, `PORTS` (`smi.apis.lossy.Narrowing` says why).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field, model_validator

from smi.apis import lossy
from smi.apis.specs import hub
from smi.apis.trusted import hub_builder
from smi.apis.wire import Headers, StrictInt, WireModel, header_list, header_pairs

# Hub objects from validated wire values (`smi.apis.trusted`): every field, in field order.
_match = hub_builder(hub.HTTPMatch)
build_group = hub_builder(hub.HTTPRouteGroup, defaulted=("kind",))


def _describe_headers(name: object, headers: tuple[tuple[str, str], ...]) -> str:
    conditions = ", ".join(f"{header}: {regex}" for header, regex in headers)
    return f"headers {{{conditions}}} of match {name!r}"


MATCH_HEADERS = lossy.Narrowing(
    field="matches", part="headers", key=lambda match: match.name, describe=_describe_headers
)
PORTS = lossy.Narrowing(
    field="ports", part=None, describe=lambda _key, ports: f"ports {list(ports)}"
)
GROUP_NARROWING = (MATCH_HEADERS,)
ROUTE_NARROWING = (PORTS,)


class Match(WireModel):
    """v1alpha1 HTTP match: name, pathRegex, methods (a string each: the validation layer
    reports methods outside the CRD enum as SMI2203 with its own message)."""

    name: str
    path_regex: str | None = Field(default=None, alias="pathRegex")
    methods: list[str] | None = None


class HeaderMatch(Match):
    """v1alpha2+ HTTP match: headers in either wire form (held as the list form)."""

    headers: Headers | None = None


def match_to_hub(match: Match) -> hub.HTTPMatch:
    headers = header_pairs(match.headers) if isinstance(match, HeaderMatch) else None
    if headers is not None and any(name == hub.AUTHORITY for name, _ in headers):
        headers = tuple((hub.header_name(name), regex) for name, regex in headers)
    return _match(
        name=match.name,
        path_regex=match.path_regex,
        methods=None if match.methods is None else tuple(match.methods),
        headers=headers,
    )


def matches_to_hub(matches: Iterable[Match]) -> tuple[hub.HTTPMatch, ...]:
    return tuple(match_to_hub(m) for m in matches)


def plain_match(match: hub.HTTPMatch) -> Match:
    return Match(
        name=match.name,
        pathRegex=match.path_regex,
        methods=None if match.methods is None else list(match.methods),
    )


def header_match(match: hub.HTTPMatch) -> HeaderMatch:
    return HeaderMatch(
        name=match.name,
        pathRegex=match.path_regex,
        methods=None if match.methods is None else list(match.methods),
        headers=header_list(match.headers),
    )


def _omitted_as(value: Any, field: str, default: Any) -> Any:
    """`value` (a mapping as written) with `field` set to `default` where it is left out or
    null; anything else is left for the model to judge."""
    if isinstance(value, Mapping) and value.get(field) is None:
        return {**value, field: default}
    return value


class PortMatches(WireModel):
    """`spec.matches` of TCPRoute/UDPRoute v1alpha4: the ports to allow ([] = all).

    The spec says an omitted `ports` means every port (SPEC.md §3.2, DESIGN.md §3), so it is
    read as `[]`, though the published CRD requires it: validation warns that the API server
    would refuse the object as written (SMI2303). The schema still says `required`, as the CRD
    does, because that is the form to write."""

    ports: list[StrictInt]

    @model_validator(mode="before")
    @classmethod
    def _every_port_when_omitted(cls, value: Any) -> Any:
        return _omitted_as(value, "ports", [])


class PortSpec(WireModel):
    """A `spec` without `matches` (`spec: {}`) means every port too (see `PortMatches`)."""

    matches: PortMatches

    @model_validator(mode="before")
    @classmethod
    def _every_port_when_omitted(cls, value: Any) -> Any:
        return _omitted_as(value, "matches", {})


def port_spec(ports: tuple[int, ...], *, has_matches: bool) -> PortSpec | None:
    """The v1alpha4 `spec` of a TCPRoute/UDPRoute hub (None = no `spec` at all)."""
    if not has_matches and not ports:
        return None
    return PortSpec(matches=PortMatches(ports=list(ports)))

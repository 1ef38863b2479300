"""Property: every hub object survives a trip through every ordered pair of versions of its
group (as documents: render, convert, parse), or is refused with SMI4002 for exactly the
reasons the target version cannot express it."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from smi.apis import registry
from smi.apis.access import hub as access
from smi.apis.meta import ObjectMeta
from smi.apis.metrics import hub as metrics
from smi.apis.specs import hub as specs
from smi.apis.split import hub as split
from smi.conversion import convert_document
from smi.errors import ConversionError

SETTINGS = settings(max_examples=60, deadline=None)

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20)
optional_ns = st.one_of(st.just(""), names)
metas = st.builds(
    ObjectMeta,
    name=names,
    namespace=optional_ns,
    labels=st.dictionaries(names, texts, max_size=2),
    annotations=st.dictionaries(names, texts, max_size=2),
)

# --- access -----------------------------------------------------------------------------------

subject_kinds = st.sampled_from(["ServiceAccount", "ServiceAccount", "IdentityBinding"])
groups = st.sampled_from(["", "", "access.smi-spec.io"])
sources = st.builds(
    access.Subject, kind=subject_kinds, name=names, namespace=optional_ns, group=groups
)
destinations = st.builds(
    access.Subject,
    kind=subject_kinds,
    name=names,
    namespace=optional_ns,
    group=groups,
    port=st.one_of(st.none(), st.integers(min_value=1, max_value=65535)),
)
rules = st.builds(
    access.Rule,
    kind=st.sampled_from(["HTTPRouteGroup", "TCPRoute", "UDPRoute"]),
    name=names,
    matches=st.one_of(st.none(), st.lists(names, max_size=3).map(tuple)),
)
traffic_targets = st.builds(
    access.TrafficTarget,
    metadata=metas,
    destination=destinations,
    rules=st.lists(rules, max_size=3).map(tuple),
    sources=st.lists(sources, max_size=3).map(tuple),
)
identity_bindings = st.builds(
    access.IdentityBinding,
    metadata=metas,
    schemes=st.builds(
        access.IdentityBindingSchemes,
        pod_label_selector=st.one_of(
            st.none(), st.dictionaries(names, names, max_size=2).map(lambda m: {"matchLabels": m})
        ),
        spiffe_identities=st.lists(texts, max_size=2).map(tuple),
        service_account=st.one_of(st.none(), names),
    ),
)

# --- specs ------------------------------------------------------------------------------------

methods = st.one_of(st.sampled_from(specs.HTTP_METHODS), st.sampled_from(["get", "FETCH"]))
header_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=10)
http_matches = st.builds(
    specs.HTTPMatch,
    name=names,
    path_regex=st.one_of(st.none(), texts),
    methods=st.one_of(st.none(), st.lists(methods, max_size=3).map(tuple)),
    headers=st.one_of(st.none(), st.lists(st.tuples(header_names, texts), max_size=3).map(tuple)),
)
ports = st.lists(st.integers(min_value=0, max_value=70000), max_size=4).map(tuple)
route_groups = st.builds(
    specs.HTTPRouteGroup, metadata=metas, matches=st.lists(http_matches, max_size=3).map(tuple)
)
tcp_routes = st.builds(specs.TCPRoute, metadata=metas, ports=ports, has_matches=st.booleans())
udp_routes = st.builds(specs.UDPRoute, metadata=metas, ports=ports, has_matches=st.booleans())

# --- split ------------------------------------------------------------------------------------

weights = st.one_of(
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=100).map(lambda w: w * 1000),
    st.integers(min_value=-5000, max_value=-1),
)
traffic_splits = st.builds(
    split.TrafficSplit,
    metadata=metas,
    service=names,
    backends=st.lists(
        st.builds(split.Backend, service=names, weight_milli=weights), max_size=4
    ).map(tuple),
    matches=st.one_of(
        st.none(),
        st.lists(
            st.builds(
                split.MatchRef,
                kind=st.sampled_from(["HTTPRouteGroup", "Other"]),
                name=names,
                api_group=st.one_of(st.none(), names),
            ),
            max_size=2,
        ).map(tuple),
    ),
)

# --- metrics ----------------------------------------------------------------------------------

refs = st.builds(
    metrics.ObjectReference,
    kind=st.one_of(st.none(), st.sampled_from(["Pod", "Deployment"])),
    name=st.one_of(st.none(), names),
    namespace=st.one_of(st.none(), names),
)
traffic_metrics = st.builds(
    metrics.TrafficMetrics,
    metadata=st.just(ObjectMeta()),
    resource=refs,
    edge=st.builds(
        metrics.Edge,
        direction=st.sampled_from(["to", "from"]),
        side=st.sampled_from(["client", "server"]),
        resource=refs,
    ),
    timestamp=st.datetimes(
        min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1)
    ).map(lambda t: t.replace(microsecond=0, tzinfo=datetime.UTC)),
    window=st.sampled_from(["30s", "1m"]),
    metrics=st.lists(
        st.builds(
            metrics.Metric,
            name=names,
            unit=st.one_of(st.none(), st.just("ms")),
            value=st.one_of(st.integers(0, 10**6), st.sampled_from(["10m", "1.5", "2Ki"])),
        ),
        max_size=3,
    ).map(tuple),
)


def _versions(hub_obj: Any) -> list[str]:
    group = registry.group_of(hub_obj)
    return [s.api_version for s in registry.served(group) if s.kind == hub_obj.kind]


def _refusal(hub_obj: Any, version: str) -> str | None:
    """Why `version` cannot express `hub_obj` at all, or None."""
    # UDPRoute rules and IdentityBinding sources ride in the annotation; only an
    # IdentityBinding destination cannot be said below v1alpha4.
    if (
        isinstance(hub_obj, access.TrafficTarget)
        and version < "access.smi-spec.io/v1alpha4"
        and hub_obj.destination.kind == "IdentityBinding"
    ):
        return "IdentityBinding"
    return None


def _check_every_pair(hub_obj: Any) -> None:
    for source, target in itertools.product(_versions(hub_obj), repeat=2):
        if _refusal(hub_obj, source):
            continue
        doc = registry.render(hub_obj, source)
        assert registry.parse(doc) == hub_obj, source
        reason = _refusal(hub_obj, target)
        if reason:
            try:
                convert_document(doc, target)
            except ConversionError as exc:
                assert exc.diagnostics[0].code == "SMI4002"
                assert reason in exc.diagnostics[0].message
                continue
            raise AssertionError(f"{target} accepted a {reason}")
        assert registry.parse(convert_document(doc, target)) == hub_obj, (source, target)


@SETTINGS
@given(traffic_targets)
def test_traffic_targets_survive_every_pair(target: access.TrafficTarget) -> None:
    _check_every_pair(target)


@SETTINGS
@given(identity_bindings)
def test_identity_bindings_survive_their_version(binding: access.IdentityBinding) -> None:
    _check_every_pair(binding)


@SETTINGS
@given(st.one_of(route_groups, tcp_routes, udp_routes))
def test_traffic_specs_survive_every_pair(route: specs.SpecsHub) -> None:
    _check_every_pair(route)


@SETTINGS
@given(traffic_splits)
def test_traffic_splits_survive_every_pair(ts: split.TrafficSplit) -> None:
    _check_every_pair(ts)


@SETTINGS
@given(traffic_metrics)
def test_traffic_metrics_survive_their_version(tm: metrics.TrafficMetrics) -> None:
    _check_every_pair(tm)
    listed = metrics.TrafficMetricsList(resource=tm.resource, items=(tm,))
    _check_every_pair(listed)

"""The registry: what smictl serves, dispatch, and rendering order."""

from __future__ import annotations

import pytest

from smi.apis import registry
from smi.apis.access import hub as access
from smi.apis.meta import ObjectMeta
from smi.apis.split import hub as split


def test_supported_versions_lists_every_group_kind_and_version_in_order() -> None:
    assert registry.supported_versions() == {
        "access.smi-spec.io": {
            "TrafficTarget": ["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"],
            "IdentityBinding": ["v1alpha4"],
        },
        "specs.smi-spec.io": {
            "HTTPRouteGroup": ["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"],
            "TCPRoute": ["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"],
            "UDPRoute": ["v1alpha4"],
        },
        "split.smi-spec.io": {"TrafficSplit": ["v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"]},
        "metrics.smi-spec.io": {
            "TrafficMetrics": ["v1alpha1"],
            "TrafficMetricsList": ["v1alpha1"],
        },
    }


def test_only_access_v1alpha4_is_a_draft() -> None:
    drafts = {(s.api_version, s.kind) for s in registry.served() if s.draft}
    assert drafts == {
        ("access.smi-spec.io/v1alpha4", "TrafficTarget"),
        ("access.smi-spec.io/v1alpha4", "IdentityBinding"),
    }


def test_flat_layouts_are_exactly_the_pre_spec_versions() -> None:
    flat = {(s.api_version, s.kind) for s in registry.served() if s.flat}
    assert flat == {
        ("access.smi-spec.io/v1alpha1", "TrafficTarget"),
        ("specs.smi-spec.io/v1alpha1", "HTTPRouteGroup"),
        ("specs.smi-spec.io/v1alpha1", "TCPRoute"),
        ("specs.smi-spec.io/v1alpha2", "HTTPRouteGroup"),
        ("specs.smi-spec.io/v1alpha2", "TCPRoute"),
        ("metrics.smi-spec.io/v1alpha1", "TrafficMetrics"),
        ("metrics.smi-spec.io/v1alpha1", "TrafficMetricsList"),
    }


def test_lookup_kinds_of_and_groups() -> None:
    entry = registry.lookup("split.smi-spec.io/v1alpha1", "TrafficSplit")
    assert entry is not None
    assert (entry.group, entry.version, entry.api_version) == (
        "split.smi-spec.io",
        "v1alpha1",
        "split.smi-spec.io/v1alpha1",
    )
    assert registry.lookup("specs.smi-spec.io/v1alpha3", "UDPRoute") is None
    assert registry.kinds_of("specs.smi-spec.io/v1alpha4") == (
        "HTTPRouteGroup",
        "TCPRoute",
        "UDPRoute",
    )
    assert registry.kinds_of("specs.smi-spec.io/v1alpha5-draft") == ()
    assert registry.is_smi_group("specs.smi-spec.io/v1alpha5-draft")
    assert not registry.is_smi_group("v1")
    assert not registry.is_smi_group("apps/v1")
    assert len(registry.served("access.smi-spec.io")) == 5


def test_render_puts_api_version_kind_and_metadata_first() -> None:
    ts = split.TrafficSplit(
        metadata=ObjectMeta(name="w"),
        service="web",
        backends=(split.Backend(service="a", weight_milli=1000),),
    )
    doc = registry.render(ts, "split.smi-spec.io/v1alpha3")
    assert list(doc) == ["apiVersion", "kind", "metadata", "spec"]
    assert doc == {
        "apiVersion": "split.smi-spec.io/v1alpha3",
        "kind": "TrafficSplit",
        "metadata": {"name": "w"},
        "spec": {"service": "web", "backends": [{"service": "a", "weight": 1}]},
    }


def test_render_refuses_unknown_versions_other_groups_and_missing_kinds() -> None:
    binding = access.IdentityBinding(
        metadata=ObjectMeta(name="b"), schemes=access.IdentityBindingSchemes(service_account="x")
    )
    with pytest.raises(registry.UnknownTarget):
        registry.render(binding, "access.smi-spec.io/v9")
    with pytest.raises(registry.WrongGroup):
        registry.render(binding, "split.smi-spec.io/v1alpha4")
    with pytest.raises(registry.KindNotInTarget):
        registry.render(binding, "access.smi-spec.io/v1alpha2")
    assert issubclass(registry.KindNotInTarget, registry.ConversionNotPossible)
    assert issubclass(registry.ConversionNotPossible, ValueError)


def test_group_of_names_the_hub_group() -> None:
    binding = access.IdentityBinding(metadata=ObjectMeta(), schemes=access.IdentityBindingSchemes())
    assert registry.group_of(binding) == "access.smi-spec.io"
    with pytest.raises(TypeError):
        registry.group_of(ObjectMeta())


def test_each_version_module_converts_through_module_level_functions() -> None:
    from smi.apis.specs import hub as specs
    from smi.apis.specs import v1alpha4

    route = specs.UDPRoute(metadata=ObjectMeta(name="u"), ports=(53,))
    wire = v1alpha4.from_hub(route)
    assert isinstance(wire, v1alpha4.UDPRoute)
    assert v1alpha4.to_hub(wire) == route

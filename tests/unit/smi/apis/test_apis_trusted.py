"""smi.apis.trusted: hub objects assembled from validated wire values are the objects their
constructors build (types, field order, fields set, equality, hash, repr), for every version
a hub can be written in; and models the shortcut would change are refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, field_validator
from test_apis_roundtrip_hypothesis import (
    SETTINGS,
    _refusal,
    _versions,
    route_groups,
    tcp_routes,
    traffic_splits,
    traffic_targets,
    udp_routes,
)

from smi.apis import registry
from smi.apis.meta import LOSSY_ANNOTATION, ObjectMeta
from smi.apis.trusted import hub_builder


def constructed(value: Any) -> Any:
    """`value` built again, bottom up, by the constructors (validating) from the same
    arguments: the fields it says were given."""
    if isinstance(value, BaseModel) and not isinstance(value, ObjectMeta):
        given = {name: constructed(getattr(value, name)) for name in value.model_fields_set}
        return type(value)(**given)
    if isinstance(value, tuple):
        return tuple(constructed(v) for v in value)
    return value


def assert_identical(built: Any, expected: Any) -> None:
    assert type(built) is type(expected)
    if isinstance(built, BaseModel):
        assert list(built.__dict__) == list(expected.__dict__)
        assert built.model_fields_set == expected.model_fields_set
        assert (built.__pydantic_extra__, built.__pydantic_private__) == (
            expected.__pydantic_extra__,
            expected.__pydantic_private__,
        )
        for name, value in built.__dict__.items():
            assert_identical(value, expected.__dict__[name])
        assert hash(built) == hash(expected)
    elif isinstance(built, tuple):
        assert len(built) == len(expected)
        for a, b in zip(built, expected, strict=True):
            assert_identical(a, b)
    assert built == expected
    assert repr(built) == repr(expected)


@SETTINGS
@given(st.one_of(traffic_targets, route_groups, tcp_routes, udp_routes, traffic_splits))
def test_parsed_hubs_are_what_their_constructors_build(hub_obj: Any) -> None:
    for version in _versions(hub_obj):
        if _refusal(hub_obj, version):
            continue
        doc = registry.render(hub_obj, version)
        parsed = registry.parse(doc)
        assert_identical(parsed, constructed(parsed))
        if LOSSY_ANNOTATION in doc.get("metadata", {}).get("annotations", {}):
            continue  # restored from the annotation: validated whole, as it always was
        # As the constructor calls had it: the kind is the model's default, and so are the
        # split matches of versions without them.
        assert "kind" not in parsed.model_fields_set
        if version in ("split.smi-spec.io/v1alpha1", "split.smi-spec.io/v1alpha2"):
            assert "matches" not in parsed.model_fields_set


def test_a_built_hub_copies_and_updates_like_a_constructed_one() -> None:
    doc = {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {"name": "s", "namespace": "n"},
        "spec": {"service": "web", "backends": [{"service": "a", "weight": 1}]},
    }
    parsed = registry.parse(doc)
    copy = parsed.model_copy(update={"service": "api"})
    assert (copy.service, parsed.service) == ("api", "web")
    assert "service" in copy.model_fields_set
    assert parsed.model_dump() == constructed(parsed).model_dump()


class _Validated(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str

    @field_validator("name")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class _Factory(BaseModel):
    items: list[str] = Field(default_factory=list)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


@pytest.mark.parametrize("model", [_Validated, _Factory, _Open, ObjectMeta])
def test_models_the_shortcut_would_change_are_refused(model: type[BaseModel]) -> None:
    with pytest.raises(TypeError, match="must be built by its constructor"):
        hub_builder(model)

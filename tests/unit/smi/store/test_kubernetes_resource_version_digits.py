"""A watch event's resourceVersion is a number only when it is ASCII digits: `str.isdigit`
is also true of superscripts (`²`, which `int` refuses: the event was lost with a ValueError)
and of other scripts' digits (`١`, which `int` reads as 1)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from smi.store.kubernetes import KubernetesStore, Watched

SPLITS = Watched("split.smi-spec.io/v1alpha4", "TrafficSplit", "trafficsplits")


def split(rv: str) -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {"name": "a", "namespace": "shop", "resourceVersion": rv},
        "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": 1}]},
    }


@pytest.mark.parametrize(
    "rv", ["²", "١٠٠", "５０"], ids=["superscript", "arabic-indic", "fullwidth"]
)
def test_a_resource_version_of_non_ascii_digits_moves_the_revision_by_one(rv: str) -> None:
    store = KubernetesStore(client.ApiClient(client.Configuration()), watched=[SPLITS])
    store.event("ADDED", split("7"))
    store.event("MODIFIED", split(rv))
    assert store.revision() == 8
    assert store.snapshot().objects[0].revision == 8

"""An IdentityBinding's `spiffeIdentities` entries must each be a SPIFFE ID, and one naming a
ServiceAccount of another namespace is a warning (SPEC.md §2.5). They were not checked, and
the compiler made each entry a source as written: `*` became the source `spiffe://*`."""

from __future__ import annotations

import pytest

from smi.loading import load_text
from smi.validation import check_resource

HEAD = """\
apiVersion: access.smi-spec.io/v1alpha4
kind: IdentityBinding
metadata: {name: b, namespace: shop}
spec:
  schemes:
    spiffeIdentities:
"""


def problems(*entries: str) -> list[tuple[str, int | None, str, bool]]:
    text = HEAD + "".join(f"    - {e!r}\n" for e in entries)
    [resource] = load_text(text, filename="b.yaml").resources
    return [(d.code, d.line, d.path, d.is_error) for d in check_resource(resource)]


@pytest.mark.parametrize(
    "entry",
    [
        "x",
        "*",
        "spiffe://*",
        "cluster.local/ns/shop/sa/",
        "cluster.local//sa/web",
        "cluster.local/ns/shop/sa/../web",
        "Cluster.Local/ns/shop/sa/web",
        "cluster.local/ns/shop/sa/web*",
    ],
)
def test_an_entry_that_is_no_spiffe_id_is_an_error(entry: str) -> None:
    assert problems("cluster.local/ns/shop/sa/ok", entry) == [
        ("SMI2409", 8, "spec.schemes.spiffeIdentities[1]", True)
    ]


def test_a_service_account_of_another_namespace_is_a_warning() -> None:
    assert problems("cluster.local/ns/other/sa/web") == [
        ("SMI2409", 7, "spec.schemes.spiffeIdentities[0]", False)
    ]


def test_ids_of_this_namespace_and_federated_ids_pass() -> None:
    assert (
        problems(
            "cluster.local/ns/shop/sa/web",
            "spiffe://example.org/ns/shop/sa/api",
            "federated.trustdomain/boundary/boundaryName/identifierType/identifier",
        )
        == []
    )

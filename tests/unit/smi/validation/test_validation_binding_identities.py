"""An IdentityBinding's `spiffeIdentities` entries must each name a ServiceAccount of the
binding's namespace (SPEC.md §2.5). They were not checked, and the compiler made each entry a
source as written: `*` became the source `spiffe://*`."""

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


def problems(*entries: str) -> list[tuple[str, int | None, str]]:
    text = HEAD + "".join(f"    - {e!r}\n" for e in entries)
    [resource] = load_text(text, filename="b.yaml").resources
    return [(d.code, d.line, d.path) for d in check_resource(resource) if d.is_error]


@pytest.mark.parametrize(
    "entry",
    [
        "x",
        "*",
        "cluster.local/ns/shop/sa/",
        "cluster.local/ns/shop/sa/web/extra",
        "cluster.local/ns/Shop/sa/web",
        "spiffe://cluster.local/ns/shop/web",
        "cluster.local/ns/other/sa/web",
    ],
)
def test_an_entry_naming_no_service_account_of_this_namespace_is_an_error(entry: str) -> None:
    assert problems("cluster.local/ns/shop/sa/ok", entry) == [
        ("SMI2409", 8, "spec.schemes.spiffeIdentities[1]")
    ]


def test_service_accounts_of_this_namespace_pass_in_either_spelling() -> None:
    assert problems("cluster.local/ns/shop/sa/web", "spiffe://example.org/ns/shop/sa/api") == []

"""A map-form header entry whose value is not a string is reported at the entry's line and
path (`spec.matches[0].headers.x-n`), as the list form is; it was reported at the map's."""

from __future__ import annotations

from smi.loading import load_text

ROUTES = """\
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
spec:
  matches:
  - name: m
    headers:
      x-a: "1"
      x-n: 5
"""


def test_the_entry_is_named_with_its_line() -> None:
    [problem] = load_text(ROUTES, filename="r.yaml").diagnostics
    assert (problem.code, problem.line, problem.path) == (
        "SMI2003",
        9,
        "spec.matches[0].headers.x-n",
    )

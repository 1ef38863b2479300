"""Admission checks each object against a persistent index of the inventory (`SetIndex`); the
diagnostics must be exactly those of `validate(..., subjects=[obj])`, which indexes the whole
set again for every object."""

from __future__ import annotations

from pathlib import Path

from smi.compiler.checks import SetIndex, validate, validate_subjects
from smi.loading import LoadResult, Resource, load_paths, load_text

SET = """
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: first, namespace: shop}
spec: {service: web, backends: [{service: web-v1, weight: 50}, {service: web-v2, weight: 50}]}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: second, namespace: shop}
spec: {service: web, backends: [{service: web-v1, weight: 100}]}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: nested, namespace: shop}
spec: {service: web-v1, backends: [{service: web-v3, weight: 1}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80}, {port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop}
spec: {ports: [{port: 80}]}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: shop}
spec: {matches: [{name: get, methods: [GET]}]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: tt, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: shop}
  rules: [{kind: HTTPRouteGroup, name: routes, matches: [get, post]}]
  sources: [{kind: ServiceAccount, name: client, namespace: other}]
---
apiVersion: access.smi-spec.io/v1alpha4
kind: TrafficTarget
metadata: {name: ib, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: shop}
  rules: [{kind: TCPRoute, name: missing}]
  sources: [{kind: IdentityBinding, name: bound, namespace: other}]
"""

SUBJECTS = """
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: first, namespace: shop}
spec: {service: web, backends: [{service: web-v1, weight: 1}, {service: gone, weight: 1}]}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: third, namespace: shop}
spec: {service: web, backends: [{service: web-v1, weight: 1}]}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: lonely, namespace: empty}
spec:
  service: api
  backends: [{service: api-v1, weight: 1}]
  matches: [{kind: HTTPRouteGroup, name: r}]
---
apiVersion: access.smi-spec.io/v1alpha4
kind: IdentityBinding
metadata: {name: bound, namespace: other}
spec: {schemes: {serviceAccount: client}}
"""


def loaded(text: str, name: str) -> LoadResult:
    result = load_text(text, filename=name)
    assert result.ok, result.diagnostics
    return result


def same_as_validate(load: LoadResult, subjects: list[Resource], *, strict: bool) -> None:
    index = SetIndex.of(load.resources, load.context)
    for subject in subjects:
        want = validate(load.resources, load.context, strict=strict, subjects=[subject])
        assert validate_subjects(index, [subject], strict=strict) == want, subject.key
    want = validate(load.resources, load.context, strict=strict, subjects=subjects)
    assert validate_subjects(index, subjects, strict=strict) == want


def test_every_object_of_a_set_with_conflicts_gets_the_same_diagnostics() -> None:
    load = loaded(SET, "set.yaml")
    index = SetIndex.of(load.resources, load.context)
    [second] = [r for r in load.resources if r.name == "second"]
    found = validate_subjects(index, [second])
    assert any(d.code == "SMI3003" and "TrafficSplit/shop/first" in d.message for d in found)
    for strict in (False, True):
        same_as_validate(load, list(load.resources), strict=strict)


def test_subjects_that_replace_or_join_the_set_get_the_same_diagnostics() -> None:
    load = loaded(SET, "set.yaml")
    subjects = list(loaded(SUBJECTS, "new.yaml").resources)
    for strict in (False, True):
        same_as_validate(load, subjects, strict=strict)
    # replacing "first" hands its root to "second": the replaced split moved to the end
    index = SetIndex.of(load.resources, load.context)
    [first] = [r for r in subjects if r.name == "first"]
    found = validate_subjects(index, [first])
    assert any(d.code == "SMI3003" and "TrafficSplit/shop/second" in d.message for d in found)


def test_an_empty_set_and_the_examples_agree(smi_examples: Path) -> None:
    examples = load_paths([smi_examples])
    same_as_validate(LoadResult(), list(examples.resources), strict=False)
    same_as_validate(examples, list(examples.resources)[:60], strict=True)

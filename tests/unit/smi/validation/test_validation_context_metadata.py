"""Context objects (Services, workloads, ServiceAccounts, Namespaces) get the metadata checks an
SMI object gets, at the field's line: types on loading (SMI2003; a `namespace: 42` put the
object in the default namespace, `name: 123` was "missing"), then names, namespaces, label
keys and values the API server refuses (SMI2006). They got none of them."""

from __future__ import annotations

from validation_helpers import run_checks

from smi.loading import load_text


def problems(text: str) -> list[tuple[str, int | None, str, str]]:
    return [(d.code, d.line, d.path, d.message) for d in run_checks(text)]


def test_context_metadata_of_the_wrong_type_is_refused_at_its_line() -> None:
    text = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: 42
  labels: {app: [web]}
  annotations: {a: 1}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: 123
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: notamap, finalizers: x}
---
apiVersion: v1
kind: Pod
metadata: [p]
"""
    assert problems(text) == [
        ("SMI2003", 5, "metadata.namespace", "must be a string, not an integer"),
        ("SMI2003", 6, "metadata.labels.app", "must be a string, not a list"),
        ("SMI2003", 7, "metadata.annotations.a", "must be a string, not an integer"),
        ("SMI2003", 12, "metadata.name", "must be a string, not an integer"),
        ("SMI2003", 16, "metadata.labels", "must be an object, not a string"),
        ("SMI2003", 16, "metadata.finalizers", "must be a list, not a string"),
        ("SMI2003", 20, "metadata", "must be an object, not a list"),
    ]
    # Not read as objects of another namespace or name: they are not read at all.
    assert load_text(text, filename="t.yaml").context == []


def test_context_names_namespaces_and_labels_the_api_server_refuses_are_errors() -> None:
    text = """\
apiVersion: v1
kind: Service
metadata:
  name: web.svc
  namespace: Shop
  labels: {"bad key!": ok, app: "v v"}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: Web_SA, namespace: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: Shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web.sa, namespace: shop}
"""
    found = problems(text)
    assert [(code, line, path) for code, line, path, _ in found] == [
        ("SMI2006", 4, "metadata.name"),
        ("SMI2006", 6, 'metadata.labels["bad key!"]'),
        ("SMI2006", 6, "metadata.labels.app"),
        ("SMI2006", 5, "metadata.namespace"),
        ("SMI2006", 10, "metadata.name"),
        ("SMI2006", 14, "metadata.name"),
    ]
    assert found[0][3].startswith("Service name 'web.svc' is not a DNS-1123 label")
    assert found[4][3].startswith("ServiceAccount name 'Web_SA' is not a DNS-1123 subdomain")
    assert all(d.is_error and d.object_ref for d in run_checks(text))

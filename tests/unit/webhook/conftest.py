"""Fixtures for the control plane's unit tests: one PolicySet per session (loading it checks
the policies in a child process, ~0.7 s), a fresh SQLite store, mesh CA and app per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from smi.pki import CertificateAuthority
from smi.policy.policyset import PolicySet
from webhook import create_app
from webhook.settings import Settings


@pytest.fixture(scope="session")
def policy_set() -> PolicySet:
    return PolicySet.load([])


@pytest.fixture
def ca_files(tmp_path: Path) -> tuple[Path, Path]:
    ca = CertificateAuthority.create()
    cert, key = tmp_path / "ca.crt", tmp_path / "ca.key"
    cert.write_bytes(ca.cert_pem())
    key.write_bytes(ca.key_pem())
    return cert, key


@pytest.fixture
def settings(tmp_path: Path, ca_files: tuple[Path, Path]) -> Settings:
    return Settings(
        store=tmp_path / "store.db",
        mesh_ca_cert_file=ca_files[0],
        mesh_ca_key_file=ca_files[1],
        proxy_image="registry.local/smictl:test",
        control_plane_url="https://smictl.smictl-system.svc:8443",
        long_poll_seconds=5.0,
    )


@pytest.fixture
def app(settings: Settings, policy_set: PolicySet) -> Iterator[Flask]:
    application = create_app(settings, policies=policy_set)
    yield application
    application.extensions["smictl"].store.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_review() -> Callable[..., dict[str, Any]]:
    return review


def review(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    api_version: str = "admission.k8s.io/v1",
    uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002",
    username: str = "alice",
    namespace: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """An AdmissionReview as kube-apiserver sends it."""
    subject = obj or old or {}
    group, _, version = str(subject.get("apiVersion", "")).rpartition("/")
    kind = str(subject.get("kind", ""))
    meta = subject.get("metadata") or {}
    return {
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "name": meta.get("name", ""),
            "namespace": namespace if namespace is not None else meta.get("namespace", ""),
            "operation": operation,
            "userInfo": {"username": username, "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": old,
            "dryRun": dry_run,
            "options": None,
        },
    }

"""The chart ships the repository's Rego policies from a copy under files/policies (Helm can
only package files inside the chart): the copy must equal `policies/` (tests left out), and
every file must fit a ConfigMap key once "/" becomes "__" (see templates/_helpers.tpl)."""

from __future__ import annotations

import re

import pytest
from chart_support import CHARTS, REPO, load_module

SYNC = load_module(CHARTS / "tools" / "sync_policies.py", "sync_policies")
CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


def _repo_policies() -> dict[str, bytes]:
    shipped = SYNC.shipped(REPO / "policies")
    if not any(rel.startswith("admission/") for rel in shipped):
        pytest.skip("policies/admission has no .rego files yet: nothing to ship")
    return shipped


def test_chart_copy_equals_the_repository_policies() -> None:
    wanted = _repo_policies()
    copy = SYNC.shipped(SYNC.COPY)
    assert sorted(copy) == sorted(wanted), "run python charts/tools/sync_policies.py"
    stale = [rel for rel in wanted if copy[rel] != wanted[rel]]
    assert stale == [], "run python charts/tools/sync_policies.py"


def test_policy_tests_are_not_shipped() -> None:
    assert not [rel for rel in SYNC.shipped(SYNC.COPY) if rel.endswith("_test.rego")]
    assert not list(SYNC.COPY.rglob("*_test.rego"))


def test_every_shipped_policy_has_a_distinct_configmap_key() -> None:
    keys = [rel.replace("/", "__") for rel in SYNC.shipped(SYNC.COPY)]
    assert all(CONFIGMAP_KEY.match(k) for k in keys), keys
    assert len(set(keys)) == len(keys)


def test_sync_tool_copies_adds_and_removes(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    source, copy = tmp_path / "policies", tmp_path / "copy"
    (source / "admission" / "a" / "p").mkdir(parents=True)
    (source / "admission" / "a" / "p" / "policy.rego").write_text("package a\n")
    (source / "admission" / "a" / "p" / "policy_test.rego").write_text("package a\n")
    (copy / "old").mkdir(parents=True)
    (copy / "old" / "gone.rego").write_text("package old\n")
    monkeypatch.setattr(SYNC, "SOURCE", source)
    monkeypatch.setattr(SYNC, "COPY", copy)
    assert sorted(SYNC.sync()) == ["admission/a/p/policy.rego", "old/gone.rego"]
    assert SYNC.shipped(copy) == {"admission/a/p/policy.rego": b"package a\n"}
    assert SYNC.sync() == []

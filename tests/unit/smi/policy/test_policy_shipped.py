"""The shipped policies: their Rego tests pass through `smictl policy test`, their samples
are admitted or refused by exactly that policy, and their METADATA is complete."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from policy_types import RunCli

from smi.codes import lookup
from smi.loading import load_paths
from smi.policy.admission import admit, admit_loaded
from smi.policy.input import Inventory
from smi.policy.modules import PolicyInfo
from smi.policy.policyset import PolicySet, shipped_dir

SHIPPED = shipped_dir()
POLICY_DIRS = sorted(p.parent for p in SHIPPED.glob("*/*/policy.rego"))


def test_every_shipped_rego_test_passes_through_smictl_policy_test(run_cli: RunCli) -> None:
    code, out, err = run_cli("policy", "test", "-v", str(SHIPPED))
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[-1].startswith("PASS: ") and lines[-2] == "-" * 80
    passed, total = lines[-1].removeprefix("PASS: ").split("/")
    assert passed == total and int(total) >= 40
    tested = {line.split(".")[3] for line in lines if line.startswith("data.")}
    assert tested == {"access", "meta", "specs", "split"}


def test_there_are_at_least_five_policies_each_with_tests_and_samples() -> None:
    assert len(POLICY_DIRS) >= 5
    for d in POLICY_DIRS:
        assert (d / "policy_test.rego").is_file(), d
        assert (d / "samples" / "allowed.yaml").is_file(), d
        assert (d / "samples" / "disallowed.yaml").is_file(), d


def test_metadata_is_complete_and_codes_are_explained(shipped: PolicySet) -> None:
    assert {p.name for p in shipped.policies} == {d.name for d in POLICY_DIRS}
    for p in shipped.policies:
        assert p.title and len(p.description) > 40, p.name
        known = lookup(p.code)
        assert known is not None and p.name.split("-")[0] in known.explanation.replace("/", "-"), (
            p.code
        )


def _policy(shipped: PolicySet, directory: Path) -> PolicyInfo:
    return next(p for p in shipped.policies if p.name == directory.name)


def _codes(paths: list[Path], shipped: PolicySet) -> set[str]:
    return {
        d.code
        for r in admit_loaded(load_paths([str(p) for p in paths]), shipped)[0]
        for d in r.diagnostics
    }


@pytest.mark.parametrize("directory", POLICY_DIRS, ids=lambda d: d.name)
def test_samples_are_judged_by_their_policy(directory: Path, shipped: PolicySet) -> None:
    policy = _policy(shipped, directory)
    samples = directory / "samples"
    if (samples / "old.yaml").exists():
        return  # an UPDATE policy: see the next test
    assert policy.code not in _codes([samples / "allowed.yaml"], shipped)
    results, _ = admit_loaded(load_paths([str(samples / "disallowed.yaml")]), shipped)
    hits = [d for r in results for d in r.diagnostics if d.code == policy.code]
    assert hits, f"{policy.name} did not fire on its disallowed sample"
    assert all(d.is_error == (policy.enforcement == "deny") for d in hits)
    assert all(d.file and d.file.endswith("disallowed.yaml") and d.line for d in hits)


def _update(new: Path, old: Path) -> dict[str, object]:
    new_doc, old_doc = yaml.safe_load(new.read_text()), yaml.safe_load(old.read_text())
    meta = new_doc["metadata"]
    return {
        "uid": "sample",
        "kind": {"group": "split.smi-spec.io", "version": "v1alpha4", "kind": new_doc["kind"]},
        "namespace": meta["namespace"],
        "name": meta["name"],
        "operation": "UPDATE",
        "userInfo": {"username": "ci"},
        "object": new_doc,
        "oldObject": old_doc,
    }


@pytest.mark.parametrize(
    "directory",
    [d for d in POLICY_DIRS if (d / "samples" / "old.yaml").exists()],
    ids=lambda d: d.name,
)
def test_update_samples_are_judged_against_the_old_version(
    directory: Path, shipped: PolicySet
) -> None:
    samples = directory / "samples"
    policy = _policy(shipped, directory)
    allowed = admit(
        _update(samples / "allowed.yaml", samples / "old.yaml"), shipped, inventory=Inventory()
    )
    assert allowed.allowed, allowed.messages
    denied = admit(_update(samples / "disallowed.yaml", samples / "old.yaml"), shipped)
    assert denied.code == 403 and all(m.startswith(f"[{policy.name}] ") for m in denied.messages)

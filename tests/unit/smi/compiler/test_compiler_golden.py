"""Golden MeshPolicy files: the whole compiled value, not one field, for each example scenario.

Regenerate after an intended change with `SMI_UPDATE_GOLDEN=1 pytest tests/unit/smi/compiler`
and review the diff: it is exactly what changes for every proxy.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from compiler_fixtures import MANIFESTS
from compiler_scenarios import SCENARIOS

from smi.compiler.build import compile
from smi.compiler.ir.model import MeshPolicy
from smi.loading import load_paths

GOLDEN = Path(__file__).parent / "golden"


def _render(name: str) -> str:
    if name in MANIFEST_SETS:
        loaded = load_paths([str(MANIFESTS / MANIFEST_SETS[name])])
        assert loaded.ok, [d.format() for d in loaded.diagnostics]
        result = compile(loaded.resources, context=loaded.context)
    else:
        scenario = SCENARIOS[name]()
        result = compile(scenario.resources, context=scenario.context)
    doc = {
        "policy": result.policy.to_dict(),
        "skipped": [d.to_json() for d in result.skipped],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


# Golden files compiled from YAML through the loader, as `smictl compile` does.
MANIFEST_SETS = {"bookstore_yaml": "bookstore"}


@pytest.mark.parametrize("name", sorted([*SCENARIOS, *MANIFEST_SETS]))
def test_compiled_policy_matches_golden_file(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    text = _render(name)
    if os.environ.get("SMI_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with SMI_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_input_order_does_not_change_a_byte(name: str) -> None:
    scenario = SCENARIOS[name]()
    expected = compile(scenario.resources, context=scenario.context)
    rng = random.Random(1234)
    for _ in range(5):
        resources, context = list(scenario.resources), list(scenario.context)
        rng.shuffle(resources)
        rng.shuffle(context)
        again = compile(resources, context=context)
        assert again.policy.to_json() == expected.policy.to_json()
        assert again.skipped == expected.skipped


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_json_round_trip_gives_the_same_policy_and_hash(name: str) -> None:
    scenario = SCENARIOS[name]()
    policy = compile(scenario.resources, context=scenario.context, revision=7).policy
    back = MeshPolicy.from_json(policy.to_json())
    assert back == policy
    assert back.to_json() == policy.to_json()
    assert back.hash == policy.hash


def test_hash_ignores_the_revision_but_not_the_content() -> None:
    scenario = SCENARIOS["bookstore"]()
    first = compile(scenario.resources, context=scenario.context, revision=1).policy
    second = compile(scenario.resources, context=scenario.context, revision=2).policy
    assert first.hash == second.hash
    assert first.to_json() != second.to_json()
    fewer = compile(scenario.resources[1:], context=scenario.context, revision=1).policy
    assert fewer.hash != first.hash


def test_hash_is_computed_once_and_matches_the_document() -> None:
    scenario = SCENARIOS["splits"]()
    policy = compile(scenario.resources, context=scenario.context).policy
    first = policy.hash
    assert policy.hash is first  # served as the ETag on every poll: not re-serialised
    assert policy.to_dict()["hash"] == first
    assert policy.with_revision(3).hash == first
    assert MeshPolicy.from_json(policy.to_json()).hash == first

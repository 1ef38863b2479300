"""The SMI versions the generated scenarios declare: exactly those of the objects each holds.

A scenario is reported and selected under the versions it declares as well as those it
exercises, so a generated split scenario that declared access and specs versions it holds no
object of was counted as access conformance although no TrafficTarget was ever sent. That the
committed files equal the generator's output is test_conformance_catalog's
`test_generated_files_are_up_to_date`."""

from __future__ import annotations

import pytest

from conformance.catalog import discover, selected
from conformance.model import GROUP_VERSIONS, Scenario
from conformance.tools.cast import declared_versions
from conformance.tools.generate import HEADER, documents, write


def _group(group_version: str) -> str:
    return group_version.partition("/")[0]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[Scenario]:
    """Every generated scenario, written by the generator to a fresh directory and read back
    through the loader the runner uses."""
    root = tmp_path_factory.mktemp("scenarios")
    assert write(root) == len(documents())
    assert all(p.read_text(encoding="utf-8").startswith(HEADER) for p in root.rglob("*.yaml"))
    return discover(root=root)


def _held(s: Scenario) -> set[str]:
    return {gv for doc in s.resources.values() if isinstance(gv := doc.get("apiVersion"), str)}


def test_no_scenario_declares_a_group_it_holds_no_object_of(generated: list[Scenario]) -> None:
    wrong = {
        s.name: gv
        for s in generated
        for gv in s.declared_versions
        if _group(gv) not in {_group(h) for h in _held(s)}
    }
    assert wrong == {}


def test_each_scenario_declares_every_served_version_of_its_objects(
    generated: list[Scenario],
) -> None:
    # The header names the versions a reader finds in the resources below it, no fewer.
    partial = {
        s.name: sorted(_held(s) & set(GROUP_VERSIONS) - set(s.declared_versions)) for s in generated
    }
    assert {k: v for k, v in partial.items() if v} == {}


def test_reports_count_a_scenario_only_under_groups_it_sends(generated: list[Scenario]) -> None:
    counted = {
        s.name: sorted({_group(gv) for gv in s.smi_versions} - {_group(h) for h in _held(s)})
        for s in generated
    }
    assert {k: v for k, v in counted.items() if v} == {}


def test_split_admission_scenarios_are_not_access_scenarios(generated: list[Scenario]) -> None:
    # Before: listed by `--smi-version access.smi-spec.io/v1alpha3` without a TrafficTarget.
    by_access = frozenset({"access.smi-spec.io/v1alpha3"})
    names = {s.name for s in generated if selected(s, by_access)}
    assert "admission/invalid-weights.split-v1alpha4" not in names
    assert "admission/two-splits-one-root.split-v1alpha4" not in names
    assert "admission/warnings.v0.6.0" not in names
    weights = next(s for s in generated if s.name == "admission/invalid-weights.split-v1alpha4")
    assert weights.smi_versions == ("split.smi-spec.io/v1alpha4",)


def test_drafts_only_scenario_is_filed_under_its_groups_latest_versions(
    generated: list[Scenario],
) -> None:
    drafts = next(s for s in generated if s.name == "admission/unsupported-versions")
    assert drafts.smi_versions == ("specs.smi-spec.io/v1alpha4", "split.smi-spec.io/v1alpha4")


@pytest.mark.parametrize(
    ("file_under", "reason"),
    [
        ("access.smi-spec.io/v1alpha3", "the access.smi-spec.io objects are none"),
        (
            "split.smi-spec.io/v1alpha4",
            "the split.smi-spec.io objects are split.smi-spec.io/v1alpha3, "
            "split.smi-spec.io/v1alpha5",
        ),
        ("specs.smi-spec.io/v1alpha5", "the specs.smi-spec.io objects are none"),
    ],
)
def test_file_under_is_refused_where_the_objects_say_the_version(
    file_under: str, reason: str
) -> None:
    resources = {
        "split": {"apiVersion": "split.smi-spec.io/v1alpha3", "kind": "TrafficSplit"},
        "draft": {"apiVersion": "split.smi-spec.io/v1alpha5", "kind": "TrafficSplit"},
    }
    with pytest.raises(ValueError, match=f"^file_under {file_under}: .*; {reason}$"):
        declared_versions(resources, file_under=(file_under,))

"""The shipped scenarios: all load, match their generator, cover every decision of DESIGN.md §3
and every SMI group/version, and select by release or group/version."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from conformance.catalog import (
    GROUP_VERSIONS,
    RELEASES,
    ScenarioError,
    discover,
    parse_version_filter,
    scenario_root,
)
from conformance.decisions import DECISIONS
from conformance.model import RequestStep, Scenario
from conformance.tools.generate import stale


@pytest.fixture(scope="module")
def shipped() -> list[Scenario]:
    return discover()


def test_every_shipped_scenario_loads(shipped: list[Scenario]) -> None:
    assert len(shipped) >= 150
    areas = Counter(s.area for s in shipped)
    assert set(areas) == {"access", "split", "admission", "conversion", "modes"}


def test_generated_files_are_up_to_date() -> None:
    assert stale(scenario_root()) == []


def test_every_design_decision_has_a_scenario(shipped: list[Scenario]) -> None:
    cited = Counter(d for s in shipped for d in s.decisions)
    assert set(cited) <= set(DECISIONS), set(cited) - set(DECISIONS)
    assert [d for d in DECISIONS if d not in cited] == []


def test_every_served_group_version_has_scenarios(shipped: list[Scenario]) -> None:
    used = Counter(gv for s in shipped for gv in s.smi_versions)
    assert {gv: used[gv] for gv in GROUP_VERSIONS if used[gv] < 5} == {}


def test_every_behaviour_of_the_issue_exists_in_every_release(shipped: list[Scenario]) -> None:
    names = {s.name.split(".", 1)[0] for s in shipped}
    for behaviour in (
        "access/default-deny",
        "access/allow-by-traffictarget",
        "access/tcproute-allows-http",
        "access/ports",
        "access/udp",
        "access/path-matching",
        "access/method-matching",
        "access/header-matching-list-form",
        "access/header-matching-map-form",
        "access/rule-matches",
        "access/several-traffictargets",
        "access/cross-namespace-sources",
        "access/delete-revokes",
        "split/weights",
        "split/weight-zero-backend",
        "split/header-matched",
        "split/service-name-namespace",
        "admission/destination-namespace",
        "admission/two-splits-one-root",
        "admission/invalid-weights",
        "admission/bad-regex",
        "admission/unknown-fields",
        "conversion/traffictarget",
        "modes/audit",
        "modes/permissive",
    ):
        assert behaviour in names
    latest = discover(smi_version="v0.6.0")
    assert {s.name.split(".", 1)[0] for s in latest} >= {
        "access/udp",
        "split/header-matched",
        "modes/audit",
    }


def test_split_weights_cover_the_five_ratios_in_every_split_version(
    shipped: list[Scenario],
) -> None:
    weights = [x for x in shipped if x.name.startswith("split/weights.")]
    assert {gv for s in weights for gv in s.smi_versions if gv.startswith("split.")} == {
        f"split.smi-spec.io/{v}" for v in ("v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4")
    }
    for s in weights:
        titles = [st.name for st in s.steps if isinstance(st, RequestStep)]
        assert titles == [f"traffic at {r}" for r in ("1/0", "0/1", "75/25", "25/75", "50/50")]


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_every_release_sends_split_traffic_in_its_own_versions(release: str) -> None:
    # v0.4.0 pairs split v1alpha3 with access v1alpha1 and specs v1alpha2 (SPEC.md §0); its
    # split traffic scenarios were all written with v0.5.0's access/specs, so the v0.4.0
    # report rated split v1alpha3 "full" on admission scenarios alone.
    split = discover(smi_version=release, patterns=["split/*"])
    behaviours = {s.name.split(".", 1)[0] for s in split}
    assert behaviours >= {
        "split/weights",
        "split/relative-weights",
        "split/weight-zero-backend",
        "split/header-matched",
        "split/backend-identity",
    }
    assert all(any(isinstance(st, RequestStep) for st in s.steps) for s in split)


def test_release_filter_keeps_only_that_release(shipped: list[Scenario]) -> None:
    latest = discover(smi_version="v0.6.0")
    assert latest and all(set(s.smi_versions) <= RELEASES["v0.6.0"] for s in latest)
    one = discover(smi_version="split.smi-spec.io/v1alpha1")
    assert one and all("split.smi-spec.io/v1alpha1" in s.smi_versions for s in one)
    assert len(discover(patterns=["split/*"])) == sum(s.area == "split" for s in shipped)


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown SMI version 'v9'"):
        parse_version_filter("v9")
    assert parse_version_filter("all") is None


def test_broken_files_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.yaml").write_text("description: x\n")
    (tmp_path / "a" / "two.yaml").write_text("- not a mapping\n")
    with pytest.raises(ScenarioError) as info:
        discover(root=tmp_path)
    text = str(info.value)
    assert f"{tmp_path}/a/one.yaml:1: capability: Field required" in text
    assert f"{tmp_path}/a/two.yaml:1: a scenario is a mapping" in text

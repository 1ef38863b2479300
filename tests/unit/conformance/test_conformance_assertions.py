"""The checks that judge every target: counts, statuses, identities, backend distributions
(with their tolerance), admission answers and conversion round trips."""

from __future__ import annotations

import pytest

from conformance.assertions import (
    AdmitObservation,
    ApplyObservation,
    ConvertObservation,
    RequestObservation,
    Response,
    check_admit,
    check_apply,
    check_backends,
    check_convert,
    check_request,
    diff,
    subset_diff,
)
from conformance.model import (
    AdmitExpect,
    BackendShares,
    ConvertExpect,
    Outcome,
    RequestExpect,
)
from conformance.results import Check


def _ok(n: int, backend: str = "catalog", identity: str = "shop/frontend") -> list[Response]:
    return [Response(allowed=True, status=200, backend=backend, identity=identity)] * n


def _no(n: int) -> list[Response]:
    return [Response(allowed=False, status=403, reason="no-traffic-target: none")] * n


def _failed(checks: list[Check]) -> dict[str, tuple[str, str]]:
    return {c.what: (c.expected, c.got) for c in checks if not c.ok}


def test_all_expectations_met() -> None:
    expect = RequestExpect(status=200, allowed=3, denied=0, identity="shop/frontend")
    checks = check_request(expect, RequestObservation(tuple(_ok(3))), count=3)
    assert all(c.ok for c in checks)
    assert [c.what for c in checks] == [
        "responses",
        "status",
        "allowed",
        "denied",
        "identity seen by the destination",
    ]


def test_mixed_statuses_are_tallied_in_the_failure() -> None:
    obs = RequestObservation(tuple(_ok(2) + _no(3)))
    checks = check_request(RequestExpect(status=403, denied=5), obs, count=5)
    assert _failed(checks) == {
        "status": ("403 for every request", "403 x3, 200 x2"),
        "denied": ("5", "3"),
    }


def test_missing_responses_fail() -> None:
    checks = check_request(RequestExpect(allowed=0), RequestObservation(()), count=2)
    assert _failed(checks) == {"responses": ("2", "0")}


def test_identity_must_be_seen_on_every_allowed_response() -> None:
    obs = RequestObservation(tuple(_ok(1) + _ok(1, identity="shop/intruder")))
    checks = check_request(RequestExpect(identity="shop/frontend"), obs, count=2)
    assert _failed(checks) == {
        "identity seen by the destination": ("shop/frontend", "shop/frontend, shop/intruder")
    }


def test_identity_fails_when_nothing_was_allowed() -> None:
    checks = check_request(
        RequestExpect(identity="shop/frontend"), RequestObservation(tuple(_no(1))), count=1
    )
    assert _failed(checks) == {"identity seen by the destination": ("shop/frontend", "nothing")}


def test_would_deny_not_reported_is_a_failure() -> None:
    checks = check_request(RequestExpect(would_deny=1), RequestObservation(tuple(_ok(1))), count=1)
    assert _failed(checks) == {"would-deny (audit)": ("1", "not reported")}


def test_deny_reason_regex() -> None:
    obs = RequestObservation(tuple(_no(2)))
    assert all(c.ok for c in check_request(RequestExpect(reason="no-traffic"), obs, count=2))
    assert _failed(check_request(RequestExpect(reason="port"), obs, count=2))


# --- distributions -------------------------------------------------------------------------


def _draws(**counts: int) -> list[str | None]:
    return [name.replace("_", "-") for name, n in counts.items() for _ in range(n)]


@pytest.mark.parametrize(
    ("v1", "v2", "ok"),
    [(75, 25, True), (66, 34, True), (65, 35, True), (64, 36, False), (86, 14, False)],
)
def test_share_tolerance_is_absolute(v1: int, v2: int, ok: bool) -> None:
    spec = BackendShares(share={"catalog-v1": 0.75, "catalog-v2": 0.25}, tolerance=0.1)
    checks = check_backends(spec, _draws(catalog_v1=v1, catalog_v2=v2))
    assert all(c.ok for c in checks) is ok


def test_share_failure_reads_expected_and_got() -> None:
    spec = BackendShares(share={"catalog-v1": 0.5, "catalog-v2": 0.5}, tolerance=0.05)
    checks = check_backends(spec, _draws(catalog_v1=80, catalog_v2=20))
    assert _failed(checks) == {
        "backend catalog-v1 share": ("0.500 +/- 0.05", "0.800 (80 of 100)"),
        "backend catalog-v2 share": ("0.500 +/- 0.05", "0.200 (20 of 100)"),
    }


def test_share_zero_means_none_at_all_even_within_tolerance() -> None:
    spec = BackendShares(share={"catalog-v1": 1.0, "catalog-v3": 0.0}, tolerance=0.2)
    checks = check_backends(spec, _draws(catalog_v1=99, catalog_v3=1))
    assert _failed(checks) == {"backend catalog-v3 share": ("no requests at all", "1 of 100")}


def test_unlisted_backend_must_get_nothing() -> None:
    spec = BackendShares(share={"catalog-v1": 1.0}, tolerance=0.2)
    checks = check_backends(spec, _draws(catalog_v1=9, catalog_v2=1))
    assert _failed(checks) == {"backend catalog-v2 share": ("no requests at all", "1 of 10")}


def test_exact_counts() -> None:
    spec = BackendShares(counts={"catalog-v1": 3, "catalog-v2": 0})
    assert all(c.ok for c in check_backends(spec, _draws(catalog_v1=3)))
    assert _failed(check_backends(spec, _draws(catalog_v1=2, catalog_v2=1))) == {
        "backend catalog-v1 count": ("3", "2"),
        "backend catalog-v2 count": ("0", "1"),
    }


def test_share_with_no_traffic_fails() -> None:
    spec = BackendShares(share={"catalog-v1": 1.0})
    assert _failed(check_backends(spec, [])) == {
        "backend catalog-v1 share": ("1.000 +/- 0.1", "0.000 (0 of 0)")
    }


# --- admission, apply, conversion ------------------------------------------------------------


def test_admit_checks_verdict_message_and_warning() -> None:
    obs = AdmitObservation(
        allowed=False,
        code=422,
        messages=("x.yaml:3: spec.backends: all weights are zero (SMI2104)",),
    )
    assert all(
        c.ok for c in check_admit(AdmitExpect(allowed=False, code=422, message="SMI2104"), obs)
    )
    failed = _failed(check_admit(AdmitExpect(allowed=True, message="SMI3003"), obs))
    assert failed["admission"][0] == "allowed"
    assert failed["admission"][1].startswith("denied: x.yaml:3: spec.backends")
    assert failed["message"] == ("/SMI3003/", obs.messages[0])


def test_admit_warnings() -> None:
    obs = AdmitObservation(allowed=True, warnings=("w: pathRegex not end-anchored (SMI2206)",))
    assert all(c.ok for c in check_admit(AdmitExpect(allowed=True, warning="SMI2206"), obs))
    assert _failed(check_admit(AdmitExpect(allowed=True, no_warnings=True), obs)) == {
        "warnings": ("none", obs.warnings[0])
    }
    assert _failed(
        check_admit(AdmitExpect(allowed=True, warning="SMI2406"), AdmitObservation(allowed=True))
    ) == {"warning": ("/SMI2406/", "no warning")}


def test_apply_refusal() -> None:
    obs = ApplyObservation(allowed=False, messages=("tt: destination namespace (SMI2401)",))
    assert all(
        c.ok for c in check_apply(Outcome(allowed=False, message="SMI2401"), obs, verb="apply")
    )
    assert _failed(check_apply(Outcome(), obs, verb="apply")) == {
        "apply": ("accepted", "refused: tt: destination namespace (SMI2401)")
    }


def test_convert_round_trip_reports_the_lost_field() -> None:
    original = {"kind": "TrafficTarget", "destination": {"name": "a", "port": 8080}}
    back = {"kind": "TrafficTarget", "destination": {"name": "a"}}
    obs = ConvertObservation(original=original, converted={"kind": "TrafficTarget"}, back=back)
    assert _failed(check_convert(ConvertExpect(), obs)) == {
        "round trip": ("the original object", "destination.port: lost (was 8080)")
    }


def test_convert_expected_error() -> None:
    obs = ConvertObservation(original={}, error="x: UDPRoute not in v1alpha3 (SMI4002)")
    assert all(c.ok for c in check_convert(ConvertExpect(error="SMI4002"), obs))
    ok = ConvertObservation(original={}, converted={}, back={})
    assert _failed(check_convert(ConvertExpect(error="SMI4002"), ok)) == {
        "conversion": ("an error matching /SMI4002/", "converted without error")
    }


def test_subset_and_diff() -> None:
    got = {"spec": {"matches": [{"name": "a", "x": 1}, {"name": "b"}]}, "kind": "K"}
    assert subset_diff({"spec": {"matches": [{"name": "a"}]}}, got) == []
    assert subset_diff({"spec": {"matches": [{"name": "b"}]}, "apiVersion": "v"}, got) == [
        "spec.matches[0].name: expected 'b', got 'a'",
        "apiVersion: missing",
    ]
    assert diff({"w": 1, "l": [1, 2]}, {"w": 1.0, "l": [1, 3], "n": None}) == [
        "l[1]: 2 became 3",
        "n: added (None)",
        "w: 1 became 1.0",
    ]

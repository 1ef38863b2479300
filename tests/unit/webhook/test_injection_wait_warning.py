"""The warning for an unreadable `smictl.io/proxy-wait-before-exit-seconds` says the wait that
applies. It said "the default (10s) applies" also where the grace period fits the default down
(to 0 s with a 5 s grace period: no preStop wait at all)."""

from __future__ import annotations

import pytest

from webhook.injection import WAIT_BEFORE_EXIT_KEY, _wait_before_exit


@pytest.mark.parametrize(
    ("grace", "wait", "says"),
    [
        (30, 10, "the default applies (10s)"),
        (15, 5, "the default applies (10s, fitted to terminationGracePeriodSeconds (15s): 5s)"),
        (5, 0, "the default applies (10s, fitted to terminationGracePeriodSeconds (5s): 0s)"),
    ],
)
def test_an_unreadable_wait_is_reported_with_the_wait_that_applies(
    grace: int, wait: int, says: str
) -> None:
    spec = {"terminationGracePeriodSeconds": grace}
    got, warnings = _wait_before_exit({WAIT_BEFORE_EXIT_KEY: "-5"}, spec)
    assert got == wait
    assert len(warnings) == 1 and warnings[0].endswith(says), warnings


@pytest.mark.parametrize("text", ["99999999999", "2147483648", "1" + "0" * 5000])
def test_a_wait_too_large_is_told_the_range_not_that_it_is_no_number(text: str) -> None:
    got, warnings = _wait_before_exit({WAIT_BEFORE_EXIT_KEY: text}, {})
    assert got == 10
    assert warnings == [
        f"{WAIT_BEFORE_EXIT_KEY}={text[:64]!r} is out of range (0 to 2147483647 seconds): "
        "the default applies (10s)"
    ]


@pytest.mark.parametrize(("text", "wait"), [("2147483647", 20), ("0002147483647", 20), ("0", 0)])
def test_a_wait_at_the_range_bounds_is_read_and_fitted(text: str, wait: int) -> None:
    got, warnings = _wait_before_exit({WAIT_BEFORE_EXIT_KEY: text}, {})
    assert got == wait
    assert all("out of range" not in w and "whole number" not in w for w in warnings)

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

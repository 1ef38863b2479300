"""The share steps of the shipped scenarios are strict enough to catch a biased split and loose
enough not to fail a correct one, through real proxies that draw each request at random.

Computed exactly, with the comparison `conformance.assertions` makes: a correct mesh's count for
a backend is Binomial(n, share). At 400 requests and a tolerance of 0.1 a split 8 points off
passed a 50/50 step 80% of the time (docs/conformance.md, "Backend distributions")."""

from __future__ import annotations

import math

import pytest

from conformance.catalog import discover
from conformance.model import RequestStep

BIAS = 0.08
RUN_FALSE_FAILURE = 1e-3  # for the whole run, every share step together
BIASED_PASS = 0.01  # for each step


def _binomial(n: int, p: float) -> list[float]:
    if p in (0.0, 1.0):
        return [float(k == round(n * p)) for k in range(n + 1)]
    lp, lq = math.log(p), math.log1p(-p)
    return [
        math.exp(
            math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq
        )
        for k in range(n + 1)
    ]


def _passes(n: int, true: float, want: float, tolerance: float) -> float:
    """P(the share check holds) when the backend really gets `true` of n requests."""
    return sum(p for k, p in enumerate(_binomial(n, true)) if abs(k / n - want) <= tolerance)


def _share_steps() -> list[tuple[str, int, dict[str, float], float]]:
    out = []
    for s in discover():
        for st in s.steps:
            if isinstance(st, RequestStep) and st.expect.backends and st.expect.backends.share:
                shares = {k: v for k, v in st.expect.backends.share.items() if v > 0}
                out.append((s.name, st.request.count, shares, st.expect.backends.tolerance))
    return out


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, int, dict[str, float], float]]:
    found = _share_steps()
    assert len(found) >= 20
    return found


def _fails(n: int, shares: dict[str, float], tolerance: float) -> float:
    """A correct mesh fails the step: exact with two backends (their counts are one binomial),
    a union bound with more."""
    checked = list(shares.values())[:1] if len(shares) == 2 else list(shares.values())
    return sum(1 - _passes(n, p, p, tolerance) for p in checked)


def test_a_correct_mesh_fails_a_whole_run_less_than_once_in_a_thousand(
    steps: list[tuple[str, int, dict[str, float], float]],
) -> None:
    total = sum(_fails(n, shares, tol) for _, n, shares, tol in steps)
    assert total < RUN_FALSE_FAILURE


def test_a_split_eight_points_off_passes_a_share_step_at_most_once_in_a_hundred(
    steps: list[tuple[str, int, dict[str, float], float]],
) -> None:
    worst = {
        name: max(
            _passes(n, min(1.0, p + sign * BIAS), p, tol)
            for p in shares.values()
            for sign in (1, -1)
        )
        for name, n, shares, tol in steps
    }
    assert {k: round(v, 3) for k, v in worst.items() if v > BIASED_PASS} == {}

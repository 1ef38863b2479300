"""bench/constant_rate.difference_ci: what the proxy bench's latency targets compare (smictl's
percentile less nginx's), with the interval that says whether one run can tell them apart."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def constant_rate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("constant_rate", ROOT / "bench/constant_rate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _slices(rng: random.Random, count: int, *, shift: int = 0, spread: int = 50) -> list[list[int]]:
    """Per-slice latencies in µs as `--interleave` keeps them: sorted within each slice."""
    return [sorted(200 + shift + rng.randrange(spread) for _ in range(200)) for _ in range(count)]


def test_the_same_requests_differ_by_nothing(constant_rate: ModuleType) -> None:
    slices = _slices(random.Random(3), 12)
    got = constant_rate.difference_ci(slices, slices, 0.99)
    assert got == {"estimate_ms": 0.0, "ci90_ms": [0.0, 0.0]}


def test_a_constant_shift_is_found_with_an_interval_around_it(constant_rate: ModuleType) -> None:
    rng = random.Random(5)
    base = _slices(rng, 24)
    slower = [[x + 40 for x in s] for s in base]  # 40 µs more on every request
    for q in (0.5, 0.99):
        got = constant_rate.difference_ci(slower, base, q)
        assert got["estimate_ms"] == 0.04
        assert got["ci90_ms"] == [0.04, 0.04]  # (paired: each resample shifts both alike)
        got = constant_rate.difference_ci(base, slower, q)
        assert got["estimate_ms"] == -0.04


def test_the_interval_spans_zero_when_slices_disagree(constant_rate: ModuleType) -> None:
    """Two targets alike but for noise: the estimate has a sign, the interval does not."""
    rng = random.Random(11)
    a, b = _slices(rng, 24, spread=400), _slices(rng, 24, spread=400)
    got = constant_rate.difference_ci(a, b, 0.99)
    low, high = got["ci90_ms"]
    assert low < 0 < high
    assert low <= got["estimate_ms"] <= high


def test_an_interval_is_of_the_slices_drawn_together(constant_rate: ModuleType) -> None:
    """Slice i of both targets shares its round: a round that was slow for both moves neither
    difference, so the paired interval stays tight where an unpaired one would not."""
    rng = random.Random(17)
    slow_rounds = [rng.choice((0, 0, 0, 500)) for _ in range(24)]  # the machine's bad seconds
    b = [[x + extra for x in s] for s, extra in zip(_slices(rng, 24), slow_rounds, strict=True)]
    a = [[x + 10 for x in s] for s in b]
    got = constant_rate.difference_ci(a, b, 0.99)
    assert got["ci90_ms"] == [0.01, 0.01]


def test_targets_need_the_same_slices(constant_rate: ModuleType) -> None:
    with pytest.raises(ValueError, match="same number of slices"):
        constant_rate.difference_ci([[1]], [[1], [2]], 0.5)
    with pytest.raises(ValueError):
        constant_rate.difference_ci([], [], 0.5)


def test_each_latency_target_is_judged_with_its_interval() -> None:
    """bench_proxy.latency_verdicts: under nginx is met; over with an interval that reaches
    zero is noise; over with the whole interval above zero is a miss."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_proxy
    finally:
        sys.path.remove(str(ROOT / "bench"))

    def d(estimate: float, low: float, high: float) -> dict[str, object]:
        return {"estimate_ms": estimate, "ci90_ms": [low, high]}

    got = bench_proxy.latency_verdicts(
        {
            "smictl_hop_minus_nginx_hop": {
                "p50": d(0.0, -0.004, 0.004),
                "p99": d(0.008, -0.007, 0.022),
            },
            "smictl_pair_minus_nginx_pair": {
                "p50": d(-0.003, -0.016, 0.009),
                "p99": d(0.024, 0.001, 0.063),
            },
        }
    )
    assert got == {
        "hop_added_p50": "met",
        "hop_added_p99": "over within noise",
        "pair_added_p50": "met",
        "pair_added_p99": "over",
    }

"""`pick_backend`: weighted choice by bisection, checked by chi-square over many seeded draws.

The RNG is seeded, so these tests are deterministic; the chi-square bound (p = 0.001) only
documents how far from the weights a correct implementation may land by chance.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from compiler_fixtures import group, match, service, split

from smi.compiler.build import compile
from smi.compiler.ir import PolicyIndex, Request, Split, SplitBackend, pick_backend
from smi.compiler.ir.index import IndexedSplit

DRAWS = 40_000
# chi-square critical values at p = 0.001 by degrees of freedom
CRITICAL = {1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47}


def compiled_split(resource: object, *services: str) -> IndexedSplit:
    policy = compile([resource], context=[service(s, 80) for s in services]).policy
    index = PolicyIndex.build(policy)
    (key,) = policy.splits
    found = index.split_for(key)
    assert found is not None
    return found


def draw(s: Split, request: Request | None = None, n: int = DRAWS) -> Counter[str | None]:
    rng = random.Random(20240601)
    return Counter(pick_backend(s, request, rng.random()) for _ in range(n))


def assert_distribution(counts: Counter[str | None], weights: dict[str, int]) -> None:
    positive = {k: w for k, w in weights.items() if w > 0}
    total, n = sum(positive.values()), sum(counts.values())
    assert set(counts) == set(positive), "a weight-0 backend was picked, or one never was"
    chi2 = sum((counts[k] - n * w / total) ** 2 / (n * w / total) for k, w in positive.items())
    assert chi2 < CRITICAL[len(positive) - 1], (chi2, counts)


def test_v1alpha1_quantities() -> None:
    s = compiled_split(
        split("my-weights", "numbers", {"one": "10m", "two": "100m", "three": "1500m"}),
        "one",
        "two",
        "three",
    )
    assert_distribution(draw(s), {"default/one": 10, "default/two": 100, "default/three": 1500})


def test_v1alpha2_integers_are_relative_shares() -> None:
    s = compiled_split(
        split("rollout", "foobar", {"foobar-v1": 1000, "foobar-v2": 500}), "foobar-v1", "foobar-v2"
    )
    counts = draw(s)
    assert_distribution(counts, {"default/foobar-v1": 2, "default/foobar-v2": 1})
    assert 0.30 < counts["default/foobar-v2"] / DRAWS < 0.37  # about a third, not 500/100


def test_mixed_units_v1alpha1_keep_their_ratio() -> None:
    # "1" and "500m": one third goes to v2 (the SDK's unscaled-digits bug would give 500:1)
    s = compiled_split(
        split("r", "foobar", {"foobar-v1": "1", "foobar-v2": "500m"}), "foobar-v1", "foobar-v2"
    )
    assert_distribution(draw(s), {"default/foobar-v1": 1000, "default/foobar-v2": 500})


def test_weight_zero_backends_are_never_picked() -> None:
    s = Split(
        origin="default/TrafficSplit/z",
        backends=(
            SplitBackend("default/a", 0),
            SplitBackend("default/b", 300),
            SplitBackend("default/c", 0),
            SplitBackend("default/d", 700),
            SplitBackend("default/e", 0),
        ),
    )
    assert_distribution(draw(s), {"default/b": 3, "default/d": 7})
    edges = {pick_backend(s, None, r) for r in (0.0, 0.2999, 0.3, 0.999999, 1.0)}
    assert edges == {"default/b", "default/d"}


def test_plain_split_and_indexed_split_pick_alike() -> None:
    plain = Split(origin="o", backends=(SplitBackend("n/a", 1), SplitBackend("n/b", 3)))
    indexed = IndexedSplit.of(plain)
    assert indexed == plain and hash(indexed) == hash(plain)
    for i in range(100):
        r = i / 100
        assert pick_backend(plain, None, r) == pick_backend(indexed, None, r)


def header_split() -> IndexedSplit:
    resources = [
        group("ab-test", match("firefox-users", headers={"user-agent": ".*Firefox.*"})),
        split("ab-test", "shop", {"shop-v1": 0, "shop-v2": 100}, matches=["ab-test"]),
    ]
    policy = compile(resources, context=[service(s, 80) for s in ("shop-v1", "shop-v2")]).policy
    found = PolicyIndex.build(policy).split_for("default/shop")
    assert found is not None
    return found


def test_header_matched_split_sends_matching_requests_by_weight() -> None:
    firefox = Request("GET", "/cart?x=1", {"user-agent": "Mozilla/5.0 Firefox/128.0"})
    assert draw(header_split(), firefox, n=2_000) == Counter({"default/shop-v2": 2_000})


@pytest.mark.parametrize(
    "request_",
    [Request("GET", "/", {"user-agent": "Mozilla/5.0 Chrome/120"}), Request("GET", "/", {}), None],
)
def test_requests_that_match_nothing_go_to_the_root(request_: Request | None) -> None:
    assert draw(header_split(), request_, n=200) == Counter({None: 200})


def test_header_split_with_two_weighted_backends() -> None:
    resources = [
        group("beta", match("beta", "/", headers={"x-beta": "yes|true"})),
        split("beta", "web", {"web-v1": 25, "web-v2": 75}, matches=["beta"]),
    ]
    policy = compile(resources, context=[service(s, 80) for s in ("web-v1", "web-v2")]).policy
    s = PolicyIndex.build(policy).split_for("default/web")
    assert s is not None
    assert_distribution(
        draw(s, Request("POST", "/buy", {"x-beta": "true"})),
        {"default/web-v1": 1, "default/web-v2": 3},
    )
    assert draw(s, Request("POST", "/buy", {"x-beta": "maybe"}), n=100) == Counter({None: 100})


def test_on_port_leaves_out_backends_whose_service_lacks_the_port() -> None:
    from smi.compiler.ir.model import Service

    s = IndexedSplit.of(
        Split(
            origin="o",
            backends=(SplitBackend("ns/v1", 1000), SplitBackend("ns/v2", 3000)),
        )
    )
    services = {"ns/v1": Service(ports=(80, 8080)), "ns/v2": Service(ports=(80,))}
    assert s.on_port("ns/web", 80, services) is s
    narrowed = s.on_port("ns/web", 8080, services)
    assert narrowed is not None and [b.service for b in narrowed.backends] == ["ns/v1"]
    assert (narrowed.cumulative, narrowed.total) == ((1000,), 1000)
    assert s.on_port("ns/web", 9090, services) is None  # no backend left: the root's
    assert s.on_port("ns/web", 9090, {}) is s  # ports unknown: nothing is left out

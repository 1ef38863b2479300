"""The demo's counters and frame, without servers: what a viewer reads."""

from __future__ import annotations

from conformance.demo_view import Edge, Event, Traffic, render

EDGES = (
    Edge("frontend", "catalog.shop", "GET", "/products/42"),
    Edge("intruder", "payments.shop", "POST", "/charge"),
)


def test_frame_counts_edges_split_and_events() -> None:
    traffic = Traffic(EDGES)
    for backend in ["catalog-v1"] * 3 + ["catalog-v2"]:
        traffic.stats[EDGES[0]].record("allowed", backend, "shop/frontend")
    traffic.stats[EDGES[1]].record("denied")
    traffic.stats[EDGES[1]].record("failed")
    policy = {
        "url": "https://127.0.0.1:8443",
        "revision": 7,
        "hash": "sha256:abc",
        "mode": "deny",
        "split": {
            "backends": [
                {"service": "shop/catalog-v1", "weight": 75000},
                {"service": "shop/catalog-v2", "weight": 25000},
            ]
        },
        "proxies": {"frontend": 7, "intruder": None},
    }
    text = render(
        traffic=traffic,
        events=[Event(3.0, "apply x DENIED: [canary-step] y", False)],
        policy=policy,
        elapsed=4.0,
        duration=20,
        final=False,
        color=False,
    )
    lines = text.splitlines()
    assert lines[0] == "smictl demo - a live SMI mesh on 127.0.0.1 (t=  4.0s of 20s)"
    assert "policy revision 7" in lines[1]
    assert lines[2] == "proxies enforce revision: frontend=7  intruder=-"
    row = next(x for x in lines if x.startswith("frontend -> catalog GET /products/42"))
    assert row.split()[5:8] == ["4", "0", "0"]
    assert "#" * 20 in row and "(seen as shop/frontend)" in row
    row = next(x for x in lines if x.startswith("intruder -> payments POST /charge"))
    assert row.split()[5:8] == ["0", "1", "1"]
    assert (
        "TrafficSplit shop/catalog: configured catalog-v1 75%  catalog-v2 25%   "
        "observed (last 5s) catalog-v1 75%  catalog-v2 25%"
    ) in lines
    assert "     3.0s apply x DENIED: [canary-step] y" in lines
    assert "\x1b[" not in text


def test_colours_and_events_are_optional() -> None:
    traffic = Traffic(EDGES)
    text = render(
        traffic=traffic,
        events=[Event(1.0, "applied", True)],
        policy={},
        elapsed=1.0,
        duration=5,
        final=True,
        color=True,
        show_events=False,
    )
    assert "\x1b[1msmictl demo" in text and "(final)" in text
    assert "events:" not in text
    assert "configured none   observed (last 5s) -" in text

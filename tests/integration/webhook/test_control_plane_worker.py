"""The event-loop gunicorn worker (`webhook.worker.LoopWorker`) under real gunicorn and TLS:
waiting requests do not hold up reviews, and SIGTERM lets in-flight requests finish."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest
from control_plane_harness import Server, admission_review, split

pytestmark = pytest.mark.integration


def long_polls(server: Server, etag: str, n: int, seconds: float) -> list[threading.Thread]:
    def poll() -> None:
        server.workload_session().get(
            f"{server.url}/mesh/v1/policy",
            params={"timeout": str(seconds)},
            headers={"If-None-Match": etag},
            timeout=seconds + 10,
        )

    threads = [threading.Thread(target=poll, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def test_reviews_are_answered_while_long_polls_wait(fresh_server: Server) -> None:
    server = fresh_server.start(workers=1)  # one worker: the polls and the reviews share it
    s = server.workload_session()
    etag = s.get(f"{server.url}/mesh/v1/policy").headers["ETag"]
    polls = long_polls(server, etag, n=4, seconds=5)
    time.sleep(0.5)
    review = admission_review(split("w", "ns"), uid="u-1")
    started = time.monotonic()
    for _ in range(20):
        r = s.post(f"{server.url}/validate", json=review, timeout=5)
        assert r.status_code == 200 and r.json()["response"]["allowed"] is True
    assert time.monotonic() - started < 3.0  # not queued behind the 5 s polls
    assert all(t.is_alive() for t in polls)  # they really were still waiting
    for t in polls:
        t.join(timeout=15)


def test_sigterm_drains_in_flight_requests(fresh_server: Server) -> None:
    server = fresh_server.start(workers=1)
    s = server.workload_session()
    etag = s.get(f"{server.url}/mesh/v1/policy").headers["ETag"]
    result: dict[str, Any] = {}

    def poll() -> None:
        r = server.workload_session().get(
            f"{server.url}/mesh/v1/policy",
            params={"timeout": "2"},
            headers={"If-None-Match": etag},
            timeout=15,
        )
        result["status"] = r.status_code

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)  # to gunicorn's master, which stops its workers
    t.join(timeout=15)
    assert result.get("status") == 304  # the poll ran to its end and was answered
    assert server.proc.wait(timeout=15) == 0


def test_an_endpoint_left_to_lapse_leaves_the_policy_and_a_renewed_one_stays(
    fresh_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMI_WEBHOOK_ENDPOINT_TTL_SECONDS", "1")
    server = fresh_server.start(workers=2)  # either worker may expire it
    token = server.smictl("certs", "token", "--identity", "shop/web", "--dir", str(server.certs))
    assert token.returncode == 0, token.stderr
    auth = {"Authorization": f"Bearer {token.stdout.strip()}"}
    s = server.admin_session()
    web = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"ports": [{"port": 80}]},
    }
    assert s.post(f"{server.url}/apis/smictl.io/v1/apply", json={"items": [web]}).ok

    def register(port: int) -> None:
        body = {"address": "127.0.0.1", "port": port, "services": ["web"]}
        r = s.post(f"{server.url}/mesh/v1/endpoints", json=body, headers=auth)
        assert r.status_code == 200 and r.json()["ttl_seconds"] == 1.0

    def ports() -> set[int]:
        policy = s.get(f"{server.url}/mesh/v1/policy").json()
        return {e["port"] for e in policy["services"]["shop/web"]["endpoints"]}

    register(15006)
    register(15007)
    assert ports() == {15006, 15007}
    deadline = time.monotonic() + 10
    while ports() != {15006} and time.monotonic() < deadline:
        register(15006)  # a live proxy renews; 15007's proxy "was killed"
        time.sleep(0.25)
    assert ports() == {15006}

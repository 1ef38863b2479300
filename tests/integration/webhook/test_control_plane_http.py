"""One real control plane (gunicorn, 2 event-loop workers, TLS) answering the API server's reviews,
`smictl apply/get/delete`, proxies' long polls, and OPA clients."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from control_plane_harness import Server, admission_review, split
from opa_client import OpaClient

pytestmark = pytest.mark.integration


def test_admission_reviews_over_tls(server: Server) -> None:
    s = server.session()
    ok = s.post(f"{server.url}/validate", json=admission_review(split("a", "web"), uid="u-ok"))
    assert ok.status_code == 200
    assert ok.json()["response"] == {"uid": "u-ok", "allowed": True}
    bad = s.post(
        f"{server.url}/validate",
        json=admission_review(split("b", "web", weights=(0, 0)), uid="u-bad"),
    )
    response = bad.json()["response"]
    assert response["uid"] == "u-bad" and response["allowed"] is False
    assert response["status"]["code"] == 422 and "SMI2104" in response["status"]["message"]


def test_malformed_review_is_a_400_not_a_500(server: Server) -> None:
    r = server.session().post(
        f"{server.url}/validate",
        data=b'{"kind": "AdmissionReview"',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "not JSON" in r.json()["error"]


def test_conversion_review_over_tls(server: Server) -> None:
    review = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {
            "uid": "c-1",
            "desiredAPIVersion": "split.smi-spec.io/v1alpha2",
            "objects": [split("a", "web")],
        },
    }
    r = server.session().post(f"{server.url}/convert", json=review)
    response = r.json()["response"]
    assert response["uid"] == "c-1" and response["result"] == {"status": "Success"}
    assert response["convertedObjects"][0]["apiVersion"] == "split.smi-spec.io/v1alpha2"


def write(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def test_smictl_apply_get_delete(server: Server, tmp_path: Path) -> None:
    good = write(tmp_path / "good.yaml", [split("cli-a", "cli-web", ns="cli")])
    done = server.smictl("apply", "-f", str(good))
    assert done.returncode == 0, done.stderr
    assert "TrafficSplit cli/cli-a created" in done.stdout
    listed = server.smictl("get", "trafficsplits", "-n", "cli", "-o", "json")
    assert [i["metadata"]["name"] for i in json.loads(listed.stdout)["items"]] == ["cli-a"]
    table = server.smictl("get", "trafficsplit", "-n", "cli")
    assert "cli-a" in table.stdout and "split.smi-spec.io/v1alpha4" in table.stdout

    bad = write(
        tmp_path / "bad.yaml",
        [split("cli-b", "cli-db", ns="cli", weights=(0, 0)), split("cli-c", "cli-web", ns="cli")],
    )
    refused = server.smictl("apply", "-f", str(bad))
    assert refused.returncode == 1
    lines = refused.stderr.splitlines()
    assert any(line.startswith(f"{bad}:") and "(SMI2104)" in line for line in lines)
    assert any("(SMI3003)" in line for line in lines)
    assert "nothing was changed" in refused.stderr
    after = server.smictl("get", "trafficsplits", "-n", "cli", "-o", "json")
    assert [i["metadata"]["name"] for i in json.loads(after.stdout)["items"]] == ["cli-a"]

    gone = server.smictl("delete", "-f", str(good))
    assert gone.returncode == 0, gone.stderr
    missing = server.smictl("get", "trafficsplit", "cli-a", "-n", "cli")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_concurrent_applies_lose_nothing_and_revisions_increase(server: Server) -> None:
    revisions: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        s = server.admin_session()
        for j in range(8):
            r = s.post(
                f"{server.url}/apis/smictl.io/v1/apply",
                json={"items": [split(f"c{i}-{j}", f"root{i}-{j}", ns="conc")]},
                timeout=60,
            )
            with lock:
                if r.status_code != 200:
                    errors.append(r.text)
                else:
                    revisions.append(r.json()["revision"])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(revisions) == 48 and len(set(revisions)) == 48  # one revision per apply
    listed = (
        server.admin_session()
        .get(f"{server.url}/apis/smictl.io/v1/objects", params={"namespace": "conc"})
        .json()
    )
    assert len(listed["items"]) == 48
    assert listed["revision"] >= max(revisions)


def test_a_long_poll_sees_an_apply_within_a_second(server: Server) -> None:
    s = server.admin_session()
    etag = s.get(f"{server.url}/mesh/v1/policy").headers["ETag"]
    seen: dict[str, Any] = {}

    def poll() -> None:
        poller = server.workload_session()  # a proxy's poll, with its workload's token
        r = poller.get(
            f"{server.url}/mesh/v1/policy",
            params={"timeout": "20"},
            headers={"If-None-Match": etag},
            timeout=30,
        )
        seen["at"] = time.monotonic()
        seen["status"] = r.status_code
        seen["policy"] = r.json() if r.status_code == 200 else None

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)  # let the poll reach a worker and start waiting (not a readiness wait)
    applied = s.post(
        f"{server.url}/apis/smictl.io/v1/apply",
        json={
            "items": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "lp", "namespace": "poll"},
                    "spec": {"ports": [{"port": 80}]},
                }
            ]
        },
    )
    applied_at = time.monotonic()
    assert applied.status_code == 200
    t.join(timeout=25)
    assert seen["status"] == 200
    assert "poll/lp" in seen["policy"]["services"]
    assert seen["at"] - applied_at < 1.0


def test_opa_python_client_gets_a_decision(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca))
    host, port = server.url.removeprefix("https://").rsplit(":", 1)
    client = OpaClient(
        host=host,
        port=int(port),
        ssl=True,
        timeout=10,
        headers={"Authorization": f"Bearer {server.workload_token('ci/opa')}"},
    )  # fmt: skip  (the Data API answers callers that prove who they are, as OPA's token auth)
    try:
        request = admission_review(split("opa", "opa-web", weights=(0, 0)), uid="o-1")["request"]
        answer = client.query_rule(input_data=request, package_path="smictl", rule_name="admission")
        assert answer["result"]["allowed"] is False and answer["result"]["code"] == 422
        owner = client.query_rule(
            input_data={"hub": {"kind": "TrafficSplit", "metadata": {"name": "x", "labels": {}}}},
            package_path="smi.admission.meta.owner_label",
            rule_name="violation",
        )
        assert owner["result"][0]["msg"] == "TrafficSplit x has no owner label"
    finally:
        client.close_connection()


def test_metrics_add_up_across_workers(server: Server) -> None:
    s = server.session()
    before = _count(s.get(f"{server.url}/metrics").text)
    for i in range(20):
        fresh = server.session()  # new connections spread the reviews over both workers
        fresh.post(f"{server.url}/validate", json=admission_review(split(f"m{i}", "m"), uid=str(i)))
    after = _count(s.get(f"{server.url}/metrics").text)
    assert after - before == 20


def _count(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("smictl_admission_requests_total{") and 'kind="TrafficSplit"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_health_endpoints(server: Server) -> None:
    s = server.session()
    assert s.get(f"{server.url}/healthz").json() == {"status": "ok"}
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{server.url}/healthz", timeout=5)  # not trusted without our CA


def test_the_remote_opa_engine_decides_through_our_data_api(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from smi.policy.admission import admit
    from smi.policy.policyset import PolicySet

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca))
    remote = PolicySet.load([], remote=server.url, remote_token=server.workload_token("ci/opa"))
    request = admission_review(split("r", "r-web"), uid="r-1")["request"]
    request["object"]["metadata"]["labels"] = {}
    result = admit(request, remote)
    assert result.allowed  # owner-label is a warning: evaluated remotely, reported here
    assert any("has no owner label" in w for w in result.warnings)

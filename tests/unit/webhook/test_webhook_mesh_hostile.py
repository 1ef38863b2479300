"""Hostile inputs to the endpoints proxies talk to: `GET /mesh/v1/policy` (long poll) and
`POST /mesh/v1/certificates`.

- an If-None-Match list holding the current tag anywhere is a held poll, as RFC 9110 reads it;
- a huge, many-valued or oddly quoted If-None-Match is answered at once, never an error;
- long polls past the limit are answered at once, and every slot comes back when polls end;
- a CSR endpoint caller cannot get a certificate for another identity, whatever the CSR says.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from flask.testing import FlaskClient
from mesh_reader import reader

from smi.identity import Identity
from smi.pki import generate_key, make_csr
from webhook.auth import BootstrapTokens, token_key


def _etag(client: FlaskClient) -> str:
    return client.get("/mesh/v1/policy", headers=reader(client)).headers["ETag"]


def _poll(client: FlaskClient, if_none_match: str, timeout: float) -> tuple[int, float, Any]:
    started = time.monotonic()
    r = client.get(
        f"/mesh/v1/policy?timeout={timeout}",
        headers={**reader(client), "If-None-Match": if_none_match},
    )
    return r.status_code, time.monotonic() - started, r.headers


@pytest.mark.parametrize(
    "listed",
    ['"stale", {}', '"a", "b", W/{}', "{0},{0}", ' ,  , {} , "x"'],
    ids=["second", "weak third", "twice", "blanks"],
)
def test_an_if_none_match_list_holding_the_current_tag_is_held(
    client: FlaskClient, listed: str
) -> None:
    # Before: only the first tag was read, so these got the whole policy at once (a 200).
    status, took, headers = _poll(client, listed.format(_etag(client)), 0.3)
    assert status == 304 and "Retry-After" not in headers
    assert 0.25 <= took < 3


@pytest.mark.parametrize(
    "hostile",
    [
        '"' + "a" * 1_000_000 + '"',
        ",".join(f'"{i}"' for i in range(50_000)),
        "," * 100_000,
        '""',
        'W/"',
        '"\\"',
        "\x7f\x00",
    ],
    ids=["huge", "many", "commas", "empty", "unclosed", "escaped", "control"],
)
def test_a_hostile_if_none_match_gets_the_policy_at_once(client: FlaskClient, hostile: str) -> None:
    status, took, headers = _poll(client, hostile, 2)
    assert status == 200 and took < 1.5
    assert headers["ETag"] == _etag(client)


def test_polls_past_the_limit_are_answered_at_once_and_every_slot_comes_back(
    client: FlaskClient,
) -> None:
    plane = client.application.extensions["smictl"]
    slots = plane.settings.threads // 2
    etag = _etag(client)
    results: list[tuple[int, float, Any]] = []
    lock = threading.Lock()

    def poll() -> None:
        answer = _poll(client.application.test_client(), etag, 0.5)
        with lock:
            results.append(answer)

    threads = [threading.Thread(target=poll) for _ in range(slots + 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(results) == slots + 4
    turned_away = [took for status, took, h in results if status == 304 and "Retry-After" in h]
    held = [took for status, took, h in results if status == 304 and "Retry-After" not in h]
    assert len(turned_away) == 4 and all(took < 0.4 for took in turned_away)
    assert len(held) == slots and all(took >= 0.45 for took in held)
    # every slot is free again: as many polls can wait as before
    taken = 0
    while plane.long_polls.acquire(blocking=False):
        taken += 1
    for _ in range(taken):
        plane.long_polls.release()
    assert taken == slots


def _bearer(client: FlaskClient, identity: str) -> dict[str, str]:
    plane = client.application.extensions["smictl"]
    tokens = BootstrapTokens(key=token_key(plane.ca.key), trust_domain="cluster.local")
    return {"Authorization": f"Bearer {tokens.issue(Identity.parse(identity))}"}


@pytest.mark.parametrize(
    "csr_for", ["shop/db", "bank/web"], ids=["same namespace", "other namespace"]
)
def test_a_csr_for_another_identity_gets_no_certificate(client: FlaskClient, csr_for: str) -> None:
    csr = make_csr(generate_key(), Identity.parse(csr_for)).decode()
    r = client.post("/mesh/v1/certificates", headers=_bearer(client, "shop/web"), json={"csr": csr})
    assert r.status_code == 403 and "certificate" not in (r.get_json() or {})

"""proxy.token: the workload's token is read from its file at every use, so a projected
ServiceAccount token the kubelet rotates (hourly) keeps the sidecar's CSRs and endpoint
registrations authenticated; a file caught mid-rewrite never blanks the token."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from proxy import registration
from proxy.httpclient import Response
from proxy.registration import Registrar, Registration
from proxy.token import MAX_TOKEN_BYTES, BearerToken, bearer


def test_the_token_is_read_again_at_every_use(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    token = BearerToken(str(path), "at-start")
    assert token() == "first"
    path.write_text("second")
    assert token() == "second"


@pytest.mark.parametrize(
    "spoil",
    [
        lambda p: p.unlink(),
        lambda p: p.write_text(""),  # the kubelet's rewrite, caught half-way
        lambda p: p.write_bytes(b"\xff\xfe"),
        lambda p: p.write_text("x" * (MAX_TOKEN_BYTES + 1)),
    ],
    ids=["missing", "empty", "not-utf8", "too-large"],
)
def test_an_unusable_file_keeps_the_last_token(
    tmp_path: Path, spoil: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text("good")
    token = BearerToken(str(path))
    assert token() == "good"
    spoil(path)
    assert token() == "good"


def test_a_fixed_token_stays_fixed() -> None:
    assert bearer("t")() == "t"
    token = BearerToken(None, "t")
    assert bearer(token) is token


def test_registrations_send_the_token_as_it_is_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "token"
    path.write_text("one")
    sent: list[str] = []

    async def request(method: str, url: str, **kw: Any) -> Response:
        sent.append(kw["headers"]["authorization"])
        return Response(status=200, body=json.dumps({"revision": 1}).encode())

    monkeypatch.setattr(registration, "request", request)
    registrar = Registrar(
        url="https://cp/mesh/v1/endpoints",
        token=BearerToken(str(path), "one"),
        ssl_context=None,
        entries=[Registration("127.0.0.1", 15006, ("web",))],
    )
    entry = registrar.entries[0]
    asyncio.run(registrar._send("POST", entry))
    path.write_text("two")  # the kubelet rotated it
    asyncio.run(registrar._send("POST", entry))
    assert sent == ["Bearer one", "Bearer two"]

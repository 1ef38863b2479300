"""A scripted API server for the Kubernetes store: recorded responses fed to the kubernetes
client's own urllib3 layer, so its real deserialisation and watch-stream parsing run."""

from __future__ import annotations

import io
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client
from urllib3.response import HTTPResponse

RECORDINGS = Path(__file__).parent / "recordings"


class RecordedBody(io.RawIOBase):
    """A response body that delivers `data` and then ends like a closed connection (urllib3
    reads until the body reports closed), or, with `drop`, fails like a reset connection."""

    def __init__(self, data: bytes, *, drop: bool = False) -> None:
        self._data = data
        self._sent = False
        self._drop = drop

    def readable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._sent and not self._drop

    def read(self, size: int | None = -1) -> bytes:
        if not self._sent:
            self._sent = True
            return self._data
        if self._drop:
            raise ConnectionResetError(104, "Connection reset by peer")
        return b""

    def readinto(self, b: Any) -> int:
        chunk = self.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]

    @property
    def watch(self) -> bool:
        return self.query.get("watch") == ["true"]

    @property
    def resource_version(self) -> str | None:
        return self.query.get("resourceVersion", [None])[0]


@dataclass
class ScriptedAPI:
    """Answers requests in order from a script of (path suffix, watch?, recording, drop?)."""

    script: deque[tuple[str, bool, str, bool]] = field(default_factory=deque)
    calls: list[Call] = field(default_factory=list)

    def expect(self, path: str, recording: str, *, watch: bool = False, drop: bool = False) -> None:
        self.script.append((path, watch, recording, drop))

    def request(self, method: str, url: str, **_: Any) -> HTTPResponse:
        parts = urlsplit(url)
        call = Call(method, parts.path, parse_qs(parts.query))
        self.calls.append(call)
        if not self.script:
            raise ConnectionRefusedError(111, "script exhausted")
        path, watch, recording, drop = self.script.popleft()
        assert call.path.endswith(path) and call.watch == watch, (call, path, watch)
        data = (RECORDINGS / recording).read_bytes()
        body = RecordedBody(data, drop=drop)
        return HTTPResponse(
            body=body,
            headers={"Content-Type": "application/json"},
            status=200,
            reason="OK",
            preload_content=False,
        )

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def api() -> tuple[Any, ScriptedAPI]:
    configuration = client.Configuration()
    configuration.host = "https://kube.test:6443"
    api_client = client.ApiClient(configuration)
    scripted = ScriptedAPI()
    api_client.rest_client.pool_manager = scripted
    return api_client, scripted

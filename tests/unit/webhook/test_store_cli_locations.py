"""`smictl apply` and `delete -f` point at the line of the field a refusal names for context
objects (Services, Namespaces) as for SMI kinds (acceptance audit of `smictl serve`), and
`delete -f` sends an object listed twice once, so that the server's refusals and results are
indexed as the CLI locates them."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from smi.cli import main

pytestmark = pytest.mark.timeout(60)

SERVICES = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  ports:
  - port: 8080
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata:
    name: api
    namespace: shop
  spec:
    ports:
    - port: 9090
"""


class Recorder:
    """A local HTTP server answering every POST with one canned reply; the bodies it got."""

    def __init__(self, status: int, reply: dict[str, Any]) -> None:
        self.bodies: list[Any] = []
        recorder = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorder.bodies.append(json.loads(self.rfile.read(length)))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def recorder() -> Iterator[Callable[[int, dict[str, Any]], Recorder]]:
    started: list[Recorder] = []

    def start(status: int, reply: dict[str, Any]) -> Recorder:
        started.append(Recorder(status, reply))
        return started[-1]

    yield start
    for r in started:
        r.server.shutdown()
        r.server.server_close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    return code, capsys.readouterr().err.strip().splitlines()


def refusal(index: int, path: str, message: str = "must be a DNS-1123 label") -> dict[str, Any]:
    return {
        "index": index,
        "object": "shop/Service/x",
        "code": 422,
        "diagnostics": [{"code": "SMI2006", "message": message, "path": path}],
    }


@pytest.fixture(params=["file", "stdin"])
def source(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """SERVICES as `-f` reads it: a file, or standard input (which cannot be read again to
    find a line); the argument and the name diagnostics give it."""
    if request.param == "stdin":
        monkeypatch.setattr("sys.stdin", io.StringIO(SERVICES))
        return "-", "<stdin>"
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICES)
    return str(manifest), str(manifest)


@pytest.mark.parametrize(
    "case",
    [
        (0, "metadata.namespace", 5),
        (0, "spec.ports[0].port", 8),
        (1, "metadata.name", 16),
        (1, "spec.ports[0].port", 20),
        (1, "spec.nowhere", 18),  # a field not written: its nearest parent's line
    ],
)
def test_a_refused_field_of_a_service_is_reported_at_its_line(
    recorder: Callable[[int, dict[str, Any]], Recorder],
    capsys: pytest.CaptureFixture[str],
    source: tuple[str, str],
    case: tuple[int, str, int],
) -> None:
    index, path, line = case
    server = recorder(
        422, {"error": "1 of the objects are invalid", "denials": [refusal(index, path)]}
    )
    code, err = run(capsys, "apply", "-f", source[0], "--server", server.url)
    # Before: every line was the object's first (1, or 13 for the List item).
    assert code == 1
    assert err[0] == f"{source[1]}:{line}: {path}: must be a DNS-1123 label (SMI2006)", err


def test_a_refused_field_of_a_json_service_is_reported_at_its_line(
    recorder: Callable[[int, dict[str, Any]], Recorder],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = tmp_path / "svc.json"
    manifest.write_text(
        '{\n  "apiVersion": "v1",\n  "kind": "Namespace",\n  "metadata": {\n'
        '    "name": "shop",\n    "labels": {"team": "a"}\n  }\n}\n'
    )
    server = recorder(422, {"error": "no", "denials": [refusal(0, "metadata.labels")]})
    code, err = run(capsys, "apply", "-f", str(manifest), "--server", server.url)
    assert code == 1 and err[0].startswith(f"{manifest}:6: metadata.labels: "), err


def test_delete_of_an_object_listed_twice_sends_it_once_where_it_first_appears(
    recorder: Callable[[int, dict[str, Any]], Recorder],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = recorder(422, {"error": "no", "denials": [refusal(1, "metadata.name")]})
    first = tmp_path / "a.yaml"
    first.write_text(
        "# the same web Service, with only its identity\n"
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n"
    )
    again = tmp_path / "b.yaml"
    again.write_text(SERVICES)
    code, err = run(capsys, "delete", "-f", str(first), "-f", str(again), "--server", server.url)
    # Before: b.yaml:4: metadata.name: shop/Service/web appears twice in one delete (SMI2007),
    # and nothing sent.
    assert [i["name"] for i in server.bodies[0]["items"]] == ["web", "api"]
    # The server's index 1 is the second object sent (api), not the second written (web).
    assert code == 1
    assert err[0] == f"{again}:16: metadata.name: must be a DNS-1123 label (SMI2006)", err


def test_delete_of_distinct_objects_is_sent(
    recorder: Callable[[int, dict[str, Any]], Recorder],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = [
        {"object": f"shop/Service/{n}", "kind": "Service", "namespace": "shop", "name": n,
         "action": "deleted"}
        for n in ("web", "api")
    ]  # fmt: skip
    server = recorder(200, {"revision": 2, "results": results})
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICES)
    code, _ = run(capsys, "delete", "-f", str(manifest), "--server", server.url)
    assert code == 0
    assert [i["name"] for i in server.bodies[0]["items"]] == ["web", "api"]

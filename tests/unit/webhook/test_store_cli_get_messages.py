"""`smictl get` on an empty list names where it looked, as kubectl does (`No resources found in
shop namespace.`): `No resources found.` alone read as "the store is empty" when only `-n`
(default: default) was wrong. And every flag of `get` says what it does in `--help`."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from smi.cli import build_parser, main

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def empty_store() -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    """A local server that lists nothing, and the queries it was asked."""
    asked: list[dict[str, list[str]]] = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            asked.append(parse_qs(urlsplit(self.path).query))
            body = json.dumps({"items": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", asked
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("argv", "namespace", "said"),
    [
        (["get", "ts", "-n", "shop"], "shop", "No resources found in shop namespace."),
        (["get", "all"], "default", "No resources found in default namespace."),
        (["get", "ts", "-A"], None, "No resources found."),
        (["get", "ns"], None, "No resources found."),  # Namespaces are in none
    ],
)
def test_an_empty_list_names_the_namespace_looked_in(
    empty_store: tuple[str, list[dict[str, list[str]]]],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    namespace: str | None,
    said: str,
) -> None:
    url, asked = empty_store
    assert main([*argv, "--server", url]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == (said + "\n", "")
    assert asked[-1].get("namespace") == (None if namespace is None else [namespace])


def test_every_argument_of_get_has_help() -> None:
    get = build_parser("get")
    sub = next(a for a in get._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices["get"]
    assert [a.option_strings or [a.dest] for a in parser._actions if not a.help] == []

"""proxy.http1: Host → service names, request targets, canned replies, header rules."""

from __future__ import annotations

import httptools
import pytest

from proxy.http1 import (
    HOP_BY_HOP,
    chunk,
    connection_tokens,
    drop_named,
    local_reply,
    named_by_connection,
    names_chunked,
    origin_form,
    service_key,
    status_line,
)


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("web", "shop/web"),
        ("web.shop", "shop/web"),
        ("web.other", "other/web"),
        ("web.other.svc", "other/web"),
        ("web.other.svc.cluster.local", "other/web"),
        ("web.other.svc.example.internal.", "other/web"),
        ("www.example.com", None),
        ("", None),
    ],
)
def test_service_key_follows_kubernetes_dns_names(host: str, key: str | None) -> None:
    assert service_key(host, namespace="shop") == key


def test_origin_form_turns_proxy_targets_into_paths() -> None:
    assert origin_form(b"/a?b=1") == (b"/a?b=1", None)
    assert origin_form(b"http://web.shop:8080/a?b") == (b"/a?b", b"web.shop:8080")
    assert origin_form(b"HTTP://web") == (b"/", b"web")
    assert origin_form(b"*") == (b"*", None)


def test_local_reply_is_a_complete_parseable_response_naming_the_reason() -> None:
    reply = local_reply(403, "source-not-allowed")
    seen: dict[str, object] = {}

    class Sink:
        def on_header(self, name: bytes, value: bytes) -> None:
            seen[name.decode().lower()] = value.decode()

        def on_body(self, body: bytes) -> None:
            seen["body"] = body

        def on_message_complete(self) -> None:
            seen["complete"] = True

    parser = httptools.HttpResponseParser(Sink())
    parser.feed_data(reply.data)
    assert parser.get_status_code() == 403
    assert seen["body"] == b"forbidden: source-not-allowed\n"
    assert seen["x-smi-reason"] == "source-not-allowed" and seen["complete"] is True
    assert "connection" not in seen and not reply.close
    closing = local_reply(403, "source-not-allowed", close=True)
    assert b"connection: close\r\n" in closing.data and closing.close
    assert local_reply(403, "source-not-allowed") is reply  # built once


def test_chunk_framing() -> None:
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"


def test_connection_tokens_and_dropping_the_headers_they_name() -> None:
    assert connection_tokens(b"Keep-Alive, X-Secret ,") == {b"keep-alive", b"x-secret"}
    pieces = [b"Host", b": ", b"a", b"\r\n", b"X-Secret: 1\r\n", b"x-other: 2\r\n"]
    assert drop_named(pieces, frozenset({b"x-secret"})) == [b"Host: a\r\n", b"x-other: 2\r\n"]


def test_the_source_identity_header_never_passes() -> None:
    assert b"x-smi-source-identity" in HOP_BY_HOP


@pytest.mark.parametrize(
    ("status", "reason", "line"),
    [
        (200, b"OK", b"HTTP/1.1 200 OK\r\n"),
        (200, b"Fine", b"HTTP/1.1 200 Fine\r\n"),
        (404, b"", b"HTTP/1.1 404 \r\n"),
        (299, b"Whatever", b"HTTP/1.1 299 Whatever\r\n"),
    ],
)
def test_status_line_keeps_the_upstream_reason(status: int, reason: bytes, line: bytes) -> None:
    assert status_line(status, reason) == line


def test_the_names_a_connection_header_lists() -> None:
    assert named_by_connection(b"keep-alive") == frozenset()
    assert named_by_connection(b"Close") == frozenset()
    assert named_by_connection(b"Keep-Alive, X-Secret, upgrade") == {b"x-secret"}
    assert named_by_connection(b" x-a ,X-B") == {b"x-a", b"x-b"}


@pytest.mark.parametrize(
    ("value", "chunked"),
    [
        (b"chunked", True),
        (b" Chunked ", True),
        (b"gzip, Chunked", False),  # refused: re-chunking would drop the gzip
        (b"xchunked", False),
        (b"gzip", False),
        (b"", False),
    ],
)
def test_a_transfer_encoding_that_names_chunked(value: bytes, chunked: bool) -> None:
    assert names_chunked(value) is chunked

"""`request_headers`, the one reading of request headers outside the proxy (`smictl explain`,
the Data API), and the proxy's own (`proxy.exchange.Headers` over what httptools parsed) agree
on every request: a verdict that read `X-Team` otherwise than the proxy would say ALLOW where
the proxy denies, or the reverse."""

from __future__ import annotations

import os

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.exchange import Headers
from proxy.http1 import text
from smi.compiler.ir.matching import request_headers

SETTINGS = settings(
    max_examples=int(os.environ.get("SMICTL_FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize(
    ("lines", "seen"),
    [
        ([], {}),
        ([("X-Team", "blue")], {"x-team": "blue"}),
        # repeated: joined in the order sent (RFC 9110 §5.3), not the last one
        ([("X-Team", "red"), ("x-team", "blue")], {"x-team": "red,blue"}),
        ([("a", "2"), ("b", "x"), ("A", "1")], {"a": "2,1", "b": "x"}),
        # SP and HTAB around a value are not part of it (RFC 9110 §5.5); inside they are
        ([("X-Team", " \tblue \t")], {"x-team": "blue"}),
        ([("X-Team", "blue green ")], {"x-team": "blue green"}),
        ([("X-Team", " blue"), ("X-Team", "green\t")], {"x-team": "blue,green"}),
        # empty lines still count: the header is present, and each one is a list member
        ([("x-e", ""), ("x-e", " \t ")], {"x-e": ","}),
    ],
)
def test_the_reading(lines: list[tuple[str, str]], seen: dict[str, str]) -> None:
    assert request_headers(lines) == seen


def test_names_are_lower_cased_as_the_proxy_lower_cases_bytes() -> None:
    """Only ASCII: `str.lower` would make `Ä` (latin-1 0xC4) `ä`, which `bytes.lower` does not."""
    assert request_headers([("X-Ä", "v")]) == {"x-Ä": "v"}
    assert dict(Headers([("X-Ä".encode("latin-1").lower(), b"v")])) == {"x-Ä": "v"}


def _parsed(lines: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """The (name, value) pairs the proxy's protocol keeps for a request with these header
    lines: as httptools reports them, names lower-cased (`proxy.server`)."""

    class Collect:
        def __init__(self) -> None:
            self.raw: list[tuple[bytes, bytes]] = []

        def on_header(self, name: bytes, value: bytes) -> None:
            self.raw.append((name.lower(), value))

    collect = Collect()
    head = b"".join(b"%s:%s\r\n" % (n.encode("latin-1"), v.encode("latin-1")) for n, v in lines)
    httptools.HttpRequestParser(collect).feed_data(b"GET / HTTP/1.1\r\n" + head + b"\r\n")
    assert len(collect.raw) == len(lines)
    return collect.raw


NAMES = st.one_of(
    st.sampled_from(["X-Team", "x-team", "X-TEAM", "x-TeAm", "User-Agent", "user-agent", "a"]),
    st.from_regex(r"\AX-[!#$%&'*+.^_`|~0-9A-Za-z-]{1,8}\Z"),
)
# What a field value may hold on the wire: visible ASCII, SP, HTAB and obs-text (RFC 9110 §5.5),
# weighted towards whitespace at either end.
VALUE_CHARS = st.sampled_from([" ", "\t", "a", "b", ",", '"', "|", "~", "!", "\x80", "é", "\xff"])
VALUES = st.tuples(
    st.text(st.sampled_from([" ", "\t"]), max_size=3),
    st.text(VALUE_CHARS, max_size=8),
    st.text(st.sampled_from([" ", "\t"]), max_size=3),
).map("".join)


@SETTINGS
@given(st.lists(st.tuples(NAMES, VALUES), max_size=8))
def test_the_proxy_reads_every_request_the_same_way(lines: list[tuple[str, str]]) -> None:
    # The lines go on the wire as ISO 8859-1 (`_parsed`), and the proxy reads each line's value
    # as UTF-8 where it is UTF-8 (`proxy.http1.text`): `é\x80\x80` is sent as E9 80 80, which
    # is `退`. A client that means `退` sends those bytes, and explain is given `退`.
    expected = request_headers([(n, text(v.encode("latin-1"))) for n, v in lines])
    raw = _parsed(lines)
    assert dict(Headers(raw)) == expected
    # a lookup before the whole map is decoded scans the raw pairs: the same answers
    lookups = Headers(raw)
    assert {name: lookups[name] for name in expected} == expected
    assert all(name in Headers(raw) for name in expected)

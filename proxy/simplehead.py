"""The usual request head read in one pass, without httptools: whole, bodiless, plain.

Why: httptools calls back into Python for each part of a message (its start, the URL, every
header, the end of the head, the end of the message), and runs llhttp's state machine between
those calls. At a steady 1,000 requests/s, where each request finds the caches cold, that code
is a fifth of the cache lines a request through the hop brings back (`bench/bench_cold.py`,
docs/proxy.md "A plain request read without httptools"). Most requests are one read holding
one head and nothing else, with no body and nothing in it the proxy must change: those are
read here, in compiled code, in one loop over the bytes. Everything else goes to httptools.

What this module accepts is a strict subset of what llhttp accepts, and it reads it as llhttp
does (tests/unit/proxy/test_simplehead.py holds both to that on generated heads):

- the request line is `METHOD SP target SP HTTP/1.1`, the method one of `METHODS`, the target
  an origin-form path of RFC 3986 characters (no `#`, no character a parser may read another
  way);
- each header line is `name ":" OWS value`, the name a token (RFC 9110 §5.6.2), the value
  HTAB, SP, VCHAR or obs-text (as llhttp allows); the value is what follows the leading OWS,
  trailing OWS kept, as httptools reports it;
- exactly one `Host`; no `Content-Length` (so no body: with none and no `Transfer-Encoding` an
  HTTP/1.1 request has none, RFC 9112 §6.3) and no hop-by-hop header (`http1.HOP_BY_HOP`,
  which also holds `Transfer-Encoding` and the caller's `x-smi-source-identity`);
- within the header limits: a head over them goes to httptools, which refuses it (431).

Such a head is forwarded as it came (`Exchange.raw_head`), as `proxy.server` forwards one that
httptools read.
"""

from __future__ import annotations

from typing import Final

from proxy.exchange import Exchange
from proxy.http1 import HOP_BY_HOP

# The methods read here: those of RFC 9110 §9.3 whose requests are routed as they come (not
# CONNECT, whose target is an authority, nor TRACE, nor the WebDAV ones llhttp also knows).
METHODS: Final = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"})
_GET: Final = b"GET"


def _table(allowed: bytes) -> bytes:
    return bytes(1 if c in allowed else 0 for c in range(256))


_ALNUM: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# RFC 9110 §5.6.2 tchar: a header name.
TOKEN: Final = _table(_ALNUM + b"!#$%&'*+-.^_`|~")
# RFC 3986 pchar, `/` and `?`: a path and query with nothing another parser could read
# otherwise (no `#`, no `"<>\^`{|}`, no space, control or non-ASCII byte).
TARGET: Final = _table(_ALNUM + b"-._~!$&'()*+,;=:@/?%")
# What llhttp takes in a header value: HTAB, SP, VCHAR, obs-text (not DEL, not other controls).
VALUE: Final = _table(b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)))

# Request header names as sent -> lower-cased: a dict lookup instead of a `lower` call per
# header. Names come from clients: only short ones are kept, and only so many.
_LOWER: Final[dict[bytes, bytes]] = {}
_LOWER_NAME: Final = 32
_LOWER_MAX: Final = 512


def lower_name(name: bytes) -> bytes:
    """A header name in lower case (`name.lower()`, remembered for the names that recur)."""
    lname = _LOWER.get(name)
    if lname is None:
        lname = name.lower()
        if len(name) <= _LOWER_NAME and len(_LOWER) < _LOWER_MAX:
            _LOWER[name] = lname
    return lname


def read_request(data: bytes, ex: Exchange, max_headers: int, max_header_bytes: int) -> bool:
    """Read `data`, one whole request head (it ends with its only CRLF CRLF and starts with
    neither CR nor LF), into `ex` if it is one this module reads; False (and `ex` to be thrown
    away) if httptools must read it."""
    end = len(data)
    if end < 16 or data[end - 4 : end] != b"\r\n\r\n":
        return False  # (what the loops below stop at)
    method = _method(data)
    start = len(method) + 1
    at = _target_end(data, start) if method else -1
    if at < 0 or not _read_fields(data, at + 11, ex):
        return False
    ex.header_bytes += at - start  # (as `proxy.server` counts them: 431 past the limit)
    if ex.host is None or len(ex.headers) > max_headers or ex.header_bytes > max_header_bytes:
        return False
    ex.method = method
    ex.url = data[start:at]
    ex.raw_head = data[:-2]
    ex.done = True
    return True


def _method(data: bytes) -> bytes:
    """The method of the request line, b"" if it is not one of `METHODS`."""
    if data[0] == 71 and data[1] == 69 and data[2] == 84 and data[3] == 32:  # GET
        return _GET
    sp = data.find(b" ", 0, 8)
    method = data[:sp] if sp > 0 else b""
    return method if method in METHODS else b""


def _target_end(data: bytes, at: int) -> int:
    """Where the origin-form target starting at `at` ends, if ` HTTP/1.1` CRLF follows it;
    else -1."""
    if data[at] != 47:  # /
        return -1
    while TARGET[data[at]]:
        at += 1
    return at if data[at : at + 11] == b" HTTP/1.1\r\n" else -1


def _read_fields(data: bytes, at: int, ex: Exchange) -> bool:
    """The header lines from `at` to the head's last CRLF into `ex` (its headers, Host and
    header bytes); False at the first one not read here."""
    end = len(data) - 2
    headers = ex.headers
    size = 0
    while at < end:
        line = at
        while TOKEN[data[at]]:
            at += 1
        if at == line or data[at] != 58:  # :
            return False
        colon = at
        at += 1
        while data[at] == 32 or data[at] == 9:  # OWS
            at += 1
        value = at
        while VALUE[data[at]]:
            at += 1
        if data[at] != 13 or data[at + 1] != 10:
            return False
        name = lower_name(data[line:colon])
        if name in HOP_BY_HOP or name == b"content-length":
            return False
        field = data[value:at]
        if name == b"host":
            if ex.host is not None:
                return False  # refused by proxy.server (400), not read here
            ex.host = field
        headers.append((name, field))
        size += colon - line + at - value + 4
        at += 2
    ex.header_bytes = size
    return at == end

"""HTTP/1.1 pieces with no I/O: header rules, canned responses, framing, Host parsing.

The protocols in `proxy.server` and `proxy.upstream` parse with httptools and call into here to
decide which headers travel, how bodies are framed, and what a local reply looks like. Local
replies are built once per (status, reason) and reused, so a deny allocates nothing.

Hop-by-hop headers (RFC 9110 §7.6.1) never cross the proxy: `Connection` and every header it
names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding` (bodies are
re-framed), `Upgrade` (re-added only for an authorized upgrade), `Proxy-Authorization`,
`Expect` (re-sent, as `100-continue`, only to a peer proxy). The caller-supplied
`x-smi-source-identity` is dropped too (also spelt with `_`): only the proxy may set it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from mypy_extensions import i64

SOURCE_IDENTITY: Final = b"x-smi-source-identity"

# Header names with more `-` and `_` than this have too many spellings to list
# (`spellings`): 2**8 = 256 for one name.
MAX_SEPARATORS: Final = 8


def spellings(name: bytes) -> frozenset[bytes]:
    """`name` with `-` and `_` exchanged at any of their places, `name` included: every name
    that CGI, WSGI, PHP and nginx's FastCGI read as the same variable (`x-env` and `x_env`
    are both HTTP_X_ENV). Only for names with at most `MAX_SEPARATORS` of them."""
    found = [b""]
    for byte in name:
        if byte in {45, 95}:  # - or _
            found = [f + b"-" for f in found] + [f + b"_" for f in found]
        else:
            found = [f + bytes((byte,)) for f in found]
    return frozenset(found)


def same_variable(name: bytes) -> bytes:
    """The spelling of `name` that all its `spellings` share (`_` as `-`)."""
    return name.replace(b"_", b"-")


# The same name with `_` for some `-`: CGI and WSGI servers map every one of these to
# HTTP_X_SMI_SOURCE_IDENTITY, so an app behind one could read a caller's copy as the proxy's.
SOURCE_IDENTITY_ALIASES: Final = spellings(SOURCE_IDENTITY) - {SOURCE_IDENTITY}

HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"expect",
        SOURCE_IDENTITY,
    }
    | SOURCE_IDENTITY_ALIASES
)
# Headers never forwarded in a response (the proxy re-frames and decides persistence).
RESPONSE_HOP_BY_HOP: Final = (
    HOP_BY_HOP - {b"proxy-authorization", b"expect", SOURCE_IDENTITY} - SOURCE_IDENTITY_ALIASES
)

# The response headers the proxy looks at (the hop-by-hop ones, and Content-Length); any
# other header line is copied as it came, its name not even lower-cased.
RESPONSE_SPECIAL: Final = RESPONSE_HOP_BY_HOP | {b"content-length"}
# A byte in lower case (ASCII letters; every other byte as it is): header names are compared
# in place, in any case, against names kept in lower case.
LOWER: Final = bytes(c + 32 if 65 <= c <= 90 else c for c in range(256))
# By a line's first byte, in either case: the special names that start with it.
_STARTING: Final[tuple[tuple[bytes, ...], ...]] = tuple(
    tuple(sorted(n for n in RESPONSE_SPECIAL if n[0] == LOWER[c])) for c in range(256)
)


def special_at(head: bytes, pos: i64, eol: i64) -> bytes:
    """The lower-case name of the `name:value` header line head[pos:eol] if it is one of
    `RESPONSE_SPECIAL`, else b"", read in place. A name is a token (no colon in it), so a
    special name of n bytes is one whose line has its colon at n: for most lines a byte or
    two compared, and no bytes object made for any. (The upstream's `_read_head` and
    `simplehead.read_response` both tell response names with it.)"""
    for name in _STARTING[head[pos]]:
        n: i64 = len(name)
        if pos + n < eol and head[pos + n] == 58 and spelled_at(head, pos, name):  # b":"
            return name
    return b""


def spelled_at(data: bytes, at: i64, lower: bytes) -> bool:
    """Whether data[at:at + len(lower)] is `lower` (lower case) in any case, compared in
    place; the caller knows that much of `data` is there."""
    i: i64 = 0
    n: i64 = len(lower)
    while i < n:
        if LOWER[data[at + i]] != lower[i]:
            return False
        i += 1
    return True


CHUNKED_HEADER: Final = b"transfer-encoding: chunked\r\n"
CLOSE_HEADER: Final = b"connection: close\r\n"
KEEP_ALIVE_HEADER: Final = b"connection: keep-alive\r\n"
UPGRADE_HEADER: Final = b"connection: upgrade\r\n"
EXPECT_HEADER: Final = b"expect: 100-continue\r\n"
CONTINUE_RESPONSE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK: Final = b"0\r\n\r\n"

PHRASES: Final[dict[int, bytes]] = {
    100: b"Continue",
    101: b"Switching Protocols",
    200: b"OK",
    204: b"No Content",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}


# Status lines with the usual reason phrase: status -> (phrase, line), built once.
STATUS_LINES: Final[dict[int, tuple[bytes, bytes]]] = {
    status: (text, b"HTTP/1.1 %d %s\r\n" % (status, text)) for status, text in PHRASES.items()
}


def status_line(status: int, reason: bytes) -> bytes:
    known = STATUS_LINES.get(status)
    if known is not None and known[0] == reason:
        return known[1]
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


def phrase(status: int) -> bytes:
    return PHRASES.get(status, b"Unknown")


@dataclass(frozen=True, slots=True)
class Reply:
    """A response the proxy answers itself. `data` is the whole response on the wire; `close`
    says whether the connection must close after it."""

    status: int
    reason: str
    data: bytes
    close: bool


@lru_cache(maxsize=256)
def local_reply(status: int, reason: str, *, close: bool = False) -> Reply:
    """`<status> <phrase>` with a one-line text body naming `reason` (a closed-set code, so the
    cache stays small); `x-smi-reason` carries the same code for programs."""
    body = f"{phrase(status).decode().lower()}: {reason}\n".encode()
    head = [
        b"HTTP/1.1 %d %s\r\n" % (status, phrase(status)),
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(body),
        b"x-smi-reason: %s\r\n" % reason.encode(),
        CLOSE_HEADER if close else b"",
        b"\r\n",
    ]
    return Reply(status=status, reason=reason, data=b"".join(head) + body, close=close)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (never called with empty data: that ends the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def connection_tokens(value: bytes) -> frozenset[bytes]:
    """The lower-case tokens of a `Connection` header value."""
    return frozenset(t.strip().lower() for t in value.split(b",") if t.strip())


# `Connection` tokens that name no header (persistence and upgrade, which the proxy decides).
PLAIN_CONNECTION: Final = frozenset({b"close", b"keep-alive", b"upgrade"})
# Headers a `Connection` value may not remove: the body's length and the request's target
# are end to end. Dropping `Content-Length` while forwarding the body would let the next hop
# read that body as the next message (a request the proxy never authorized, or a response
# for another client); dropping `Host` would leave an HTTP/1.1 request without one.
# `Transfer-Encoding` is the proxy's own: a chunked body goes on chunked whatever a
# `Connection` value lists (so a match reads it as sent, proxy.routing).
NEVER_NAMED: Final = PLAIN_CONNECTION | {b"content-length", b"host", b"transfer-encoding"}
# The usual spellings of those (`Connection: keep-alive` comes with most responses): found
# without lower-casing the value.
_PLAIN_SPELLED: Final = PLAIN_CONNECTION | {b"Close", b"Keep-Alive", b"Upgrade"}
_NO_NAMES: Final[frozenset[bytes]] = frozenset()


def named_by_connection(value: bytes) -> frozenset[bytes]:
    """The header names a `Connection` value lists (lower-case): the further hop-by-hop
    headers to drop (never those of `NEVER_NAMED`). The usual value is one plain token,
    answered without splitting."""
    if value in _PLAIN_SPELLED or value.lower() in PLAIN_CONNECTION:
        return _NO_NAMES
    return connection_tokens(value) - NEVER_NAMED


def names_chunked(value: bytes) -> bool:
    """Whether a `Transfer-Encoding` value is exactly chunked, the one coding the proxy
    frames. Any other value (`gzip, chunked`, `xchunked`, `chunked, gzip`) is refused by the
    callers: re-chunking would drop the other codings, and a substring match could call
    chunked what httptools frames otherwise (RFC 9112 §6.1; nginx answers the same way)."""
    return value.strip().lower() == b"chunked"


def drop_named(pieces: list[bytes], names: frozenset[bytes]) -> list[bytes]:
    """Remove the header lines whose (lower-case) name is in `names` (the extra hop-by-hop
    headers a `Connection` header lists). `pieces` are serialised header lines, possibly cut
    into fragments; the result has one element per line. Rare, so it re-parses."""
    lines = b"".join(pieces).split(b"\r\n")
    return [
        ln + b"\r\n" for ln in lines if ln and ln.split(b":", 1)[0].strip().lower() not in names
    ]


def text(data: bytes) -> str:
    """Request bytes as the text a policy's regexes and literals are written in: UTF-8 where
    they are UTF-8 (every non-ASCII value a client library sends), else ISO 8859-1, HTTP's
    historical charset, so that any bytes read as some text. Read as ISO 8859-1 alone,
    `x-team: grün` was `grÃ¼n`, which passed a rule for `[^äöü]+` that `smictl explain` (given
    the text, as the Data API is) denies; ASCII reads the same either way."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def field_value(value: bytes) -> bytes:
    """A header value as RFC 9110 §5.5 defines it: without trailing SP or HTAB (httptools has
    dropped the leading ones). Most values end otherwise, and are returned as they are."""
    if value and (value[-1] == 32 or value[-1] == 9):  # SP, HTAB
        return value.rstrip(b" \t")
    return value


def rewrite_lines(data: bytes, *, drop: frozenset[bytes], trim: frozenset[bytes]) -> list[bytes]:
    """The serialised header lines in `data` (CRLF-ended, as httptools accepted them) less
    those whose lower-case name is in `drop`, and with the values of those named in `trim`
    made `field_value`s. Rare (see `proxy.routing`), so it re-parses."""
    out: list[bytes] = []
    for line in data.split(b"\r\n"):
        if not line:
            continue
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname in drop:
            continue
        if lname in trim:
            out.append(b"%s:%s\r\n" % (name, field_value(value)))
        else:
            out.append(line + b"\r\n")
    return out


def header_lines(head: bytes, drop: frozenset[bytes]) -> list[bytes]:
    """The header lines of a whole request head as httptools accepted it (CRLF line ends, no
    folding, no space before a colon), less those whose lower-case name is in `drop`."""
    lines = head.split(b"\r\n")[1:]
    return [line + b"\r\n" for line in lines if line and line.split(b":", 1)[0].lower() not in drop]


def request_line(method: bytes, target: bytes) -> bytes:
    return b"%s %s HTTP/1.1\r\n" % (method, target)


def origin_form(url: bytes) -> tuple[bytes, bytes | None]:
    """Split a request target into (origin-form target, authority or None).

    `http://web.shop:8080/a?b` → (`/a?b`, `web.shop:8080`); `http://web?a=/b` → (`/?a=/b`,
    `web`); `/a` → (`/a`, None). The authority ends at the first `/`, `?` or `#` (RFC 3986
    §3.2). Proxy-form targets are what an app sends when it uses the outbound listener as its
    HTTP proxy."""
    if url[:1] == b"/":
        return url, None
    lowered = url[:8].lower()
    for scheme in (b"http://", b"https://"):
        if lowered.startswith(scheme):
            rest = url[len(scheme) :]
            end = len(rest)
            for delimiter in (b"/", b"?", b"#"):
                at = rest.find(delimiter, 0, end)
                if at >= 0:
                    end = at
            path = rest[end:]
            return (path if path[:1] == b"/" else b"/" + path), rest[:end]
    return url, None


# Upgrade protocol names that are HTTP itself (`h2c`, `HTTP/2.0`): on the other side of such
# an upgrade, every further request would reach the app without being authorized.
_HTTP_UPGRADES: Final = frozenset({b"h2c", b"h2", b"http"})


def upgrades_to_http(value: bytes) -> bool:
    """Whether an `Upgrade` value offers a version of HTTP (`h2c`, `HTTP/2.0`, in a list or
    alone)."""
    return any(t.split(b"/", 1)[0] in _HTTP_UPGRADES for t in connection_tokens(value))


def upgrade_offered(asked: bytes, chosen: bytes) -> bool:
    """Whether every protocol a 101's `Upgrade` value (`chosen`) names is one the request's
    `Upgrade` (`asked`) offered (RFC 9110 §7.8: the server MUST NOT switch to another), in
    any case: the same `name/version`, or the name alone when the request named no version."""
    offered = connection_tokens(asked)
    chosen_tokens = connection_tokens(chosen)
    return bool(chosen_tokens) and all(
        token in offered or token.split(b"/", 1)[0] in offered for token in chosen_tokens
    )


def _table(allowed: bytes) -> bytes:
    return bytes(1 if c in allowed else 0 for c in range(256))


_ALNUM: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# RFC 3986 §3.2.2 reg-name: unreserved and sub-delims (an IPv4 address is made of these too);
# pct-encoded aside, which `valid_host` reads.
_REG_NAME: Final = _table(_ALNUM + b"-._~!$&'()*+,;=")
_DIGIT: Final = _table(b"0123456789")
_HEX: Final = _table(b"0123456789abcdefABCDEF")
# What an IPv6 address in brackets is written with (inet_pton then reads it).
_IPV6: Final = frozenset(b"0123456789abcdefABCDEF:.")


def plain_host(data: bytes, start: i64, stop: i64) -> bool:
    """Whether data[start:stop] is the usual Host: a reg-name of unreserved and sub-delim
    characters, then `:` and port digits or not. Read in place, a byte each (the request path
    reads every request's Host: see `valid_host`)."""
    while start < stop and _REG_NAME[data[start]]:
        start += 1
    if start < stop and data[start] == 58:  # :
        start += 1
        while start < stop and _DIGIT[data[start]]:
            start += 1
    return start == stop


def valid_host(value: bytes) -> bool:
    """Whether a `Host` field value is `uri-host [":" port]` (RFC 9112 §3.2, RFC 3986 §3.2.2):
    a reg-name (unreserved, sub-delims, pct-encoded; empty too, as a Host may be), an IPv4
    address, or an IP literal in brackets (IPv6, IPvFuture), and a port of digits. RFC 9112 §3.2:
    any other value gets 400; an app or a router reading `api, evil`, `user@evil` or
    `evil/path` as a host could each take another one from it. Trailing SP and HTAB are not
    part of the value (RFC 9110 §5.5)."""
    if plain_host(value, 0, len(value)):
        return True
    value = field_value(value)
    rest = value
    if value[:1] == b"[":
        end = value.find(b"]")
        if end < 0 or not _ip_literal(value[1:end]):
            return False
        rest = value[end + 1 :]
    else:
        colon = value.find(b":")
        host = value if colon < 0 else value[:colon]
        rest = b"" if colon < 0 else value[colon:]
        if not _reg_name(host):
            return False
    return not rest or (rest[:1] == b":" and all(_DIGIT[c] for c in rest[1:]))


def _reg_name(host: bytes) -> bool:
    """RFC 3986 reg-name: unreserved, sub-delims and `%` HEXDIG HEXDIG."""
    i, n = 0, len(host)
    while i < n:
        c = host[i]
        if c == 37:  # %
            if i + 2 >= n or not (_HEX[host[i + 1]] and _HEX[host[i + 2]]):
                return False
            i += 3
        elif _REG_NAME[c]:
            i += 1
        else:
            return False
    return True


def _ip_literal(inside: bytes) -> bool:
    """What RFC 3986 §3.2.2 allows in brackets: an IPv6 address, or IPvFuture (`v` HEXDIG+
    `.` then unreserved, sub-delims or `:`)."""
    if inside[:1] in (b"v", b"V"):
        dot = inside.find(b".")
        version, address = inside[1:dot], inside[dot + 1 :]
        return (
            dot > 1
            and all(_HEX[c] for c in version)
            and len(address) > 0
            and all(_REG_NAME[c] or c == 58 for c in address)
        )
    if not inside or not _IPV6.issuperset(inside):
        return False
    try:
        socket.inet_pton(socket.AF_INET6, inside.decode("ascii"))
    except OSError:
        return False
    return True


def service_key(host: str, *, namespace: str) -> str | None:
    """The "ns/name" a Host names: `name` (the caller's namespace), `name.ns`,
    `name.ns.svc`, `name.ns.svc.<cluster-domain>`; None for any other host name."""
    parts = host.rstrip(".").split(".")
    if len(parts) == 1:
        return f"{namespace}/{parts[0]}" if parts[0] else None
    if len(parts) == 2 or parts[2] == "svc":
        return f"{parts[1]}/{parts[0]}"
    return None

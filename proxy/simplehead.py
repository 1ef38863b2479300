"""The usual request and response read in one pass, without httptools: whole and plain.

Why: httptools calls back into Python for each part of a message (its start, the URL, every
request header, the end of the head, the body, the end of the message), and runs llhttp's
state machine between those calls. At a steady 1,000 requests/s, where each request finds the
caches cold, that code was a fifth of the cache lines a request through the hop brought back
(`bench/bench_cold.py`; docs/proxy.md "The usual messages read without httptools"). Most
messages come in one read that holds the message and nothing else, with nothing in it the
proxy must change: those are read here, in compiled code, in one loop over the bytes (with
positions as `i64`, so the loop does machine arithmetic). Everything else goes to httptools,
which stays at the message boundary.

What this module accepts is a strict subset of what llhttp accepts, and it reads it as llhttp
does (tests/unit/proxy/test_simplehead.py holds both to that on generated messages, and the
proxy to the same bytes either way). A request (`read_request`) is read when:

- the request line is `METHOD SP target SP HTTP/1.1`, the method one of `METHODS`, the target
  an origin-form path of RFC 3986 characters (no `#`, no character a parser may read another
  way);
- each header line is `name ":" OWS value`, the name a token (RFC 9110 §5.6.2), the value
  HTAB, SP, VCHAR or obs-text (as llhttp allows); the value is what follows the leading OWS,
  trailing OWS kept, as httptools reports it;
- exactly one `Host`, a plain one (`http1.plain_host`: a reg-name, then a port or not); no
  `Content-Length` (so no body: with none and no `Transfer-Encoding` an HTTP/1.1 request has
  none, RFC 9112 §6.3) and no hop-by-hop header (`http1.HOP_BY_HOP`, which also holds
  `Transfer-Encoding` and the caller's `x-smi-source-identity`);
- within the header limits: a head over them goes to httptools, which refuses it (431).

Such a head is forwarded as it came (`Exchange.raw_head`), as `proxy.server` forwards one that
httptools read. A response (`read_response`) is read when it is all there with its body
framed by one Content-Length: see there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from mypy_extensions import i64

from proxy.http1 import HOP_BY_HOP, plain_host, special_at, spelled_at

if TYPE_CHECKING:
    # (Not imported at run time: proxy.exchange imports proxy.upstream, which imports this.)
    from proxy.exchange import Exchange

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

# Request header names as sent -> lower-cased: a table of fixed size, indexed by a hash of the
# name in any case (`_hash_step`, computed as the name is scanned). A name found there costs a
# comparison in place: no bytes object, no `lower` call, no dict or set lookup. Names come from
# clients: a name takes the slot of the one it collides with, and only names of at most
# `_SHORT` bytes are kept, so the table never grows. The names that send a request to httptools
# (`_refused`) are never kept: such a request is not read here, however often it comes.
_SLOTS: Final = 256
_SHORT: Final = 32
_SPELLED: Final[list[bytes]] = [b""] * _SLOTS  # as sent
_NAMES: Final[list[bytes]] = [b""] * _SLOTS  # lower-cased
# The one name the table gives out that the reader must know: `Host`, told apart by identity.
_HOST: Final = b"host"


def _hash_step(h: i64, c: i64) -> i64:
    """One byte more of a header name's hash, the same in any case (`c | 32` is a letter's
    lower case, and leaves every other byte of a token as it is but `^` and `_`, which only
    share a hash with `~` and DEL, never a name)."""
    return (h * 31 + (c | 32)) & 0xFFFFFF


def _bit(h: i64) -> i64:
    """A name's bit in `Exchange.name_bits`, from its hash."""
    one: i64 = 1  # (a 64-bit shift: the literal alone is a C int)
    return one << (h % 62)


def name_bits(names: Iterable[bytes]) -> i64:
    """The bits of `names` (lower case), as `read_request` sets those of a request's in
    `Exchange.name_bits`: a request whose bits share none has no header of these names."""
    bits: i64 = 0
    for name in names:
        h: i64 = 0
        for c in name:
            h = _hash_step(h, c)
        bits |= _bit(h)
    return bits


def lower_name(name: bytes) -> bytes:
    """A header name in lower case (`name.lower()`, remembered for the names that recur)."""
    h: i64 = 0
    for c in name:
        h = _hash_step(h, c)
    return _name_at(name, 0, len(name), h) or name.lower()


def _name_at(data: bytes, start: i64, stop: i64, h: i64) -> bytes:
    """data[start:stop] lower-cased, from the table when it is there (`h` its hash), put there
    if it is short (`Host` as `_HOST` itself); b"" if it is `_refused`."""
    slot = h & (_SLOTS - 1)
    spelled = _SPELLED[slot]
    if len(spelled) == stop - start and _spells(data, start, spelled):
        return _NAMES[slot]
    raw = data[start:stop]
    name = raw.lower()
    if _refused(name):
        return b""
    if name == _HOST:
        name = _HOST
    if stop - start <= _SHORT:
        _SPELLED[slot] = raw
        _NAMES[slot] = name
    return name


def _refused(name: bytes) -> bool:
    """Whether a request with this header goes to httptools: a hop-by-hop header (which also
    holds the caller's `x-smi-source-identity`) or a body's `Content-Length`."""
    return name in HOP_BY_HOP or name == b"content-length"


def read_request(data: bytes, ex: Exchange, max_headers: int, max_header_bytes: int) -> bool:
    """Read `data`, one whole request head (it ends with its only CRLF CRLF and starts with
    neither CR nor LF), into `ex` if it is one this module reads; False (and `ex` to be thrown
    away) if httptools must read it."""
    end: i64 = len(data)
    if end < 16 or not data.endswith(b"\r\n\r\n"):
        return False  # (what the loops below stop at)
    method = _method(data)
    start: i64 = len(method) + 1
    # (Statements, not conditional expressions with a literal, here and below: mypyc gives
    # those the type `int`, and boxes the i64 on the way.)
    at: i64 = -1
    if start > 1:
        at = _target_end(data, start)
    if at < 0:
        return False
    # (Header bytes as `proxy.server` counts them, the target's included: 431 past the limit.)
    ex.header_bytes = at - start
    if not _read_fields(data, at + 11, ex, max_headers, max_header_bytes) or ex.host is None:
        return False
    ex.method = method
    ex.url = data[start:at]
    ex.raw_head = data[:-2]
    ex.fields_at = at + 11
    ex.done = True
    return True


def _method(data: bytes) -> bytes:
    """The method of the request line, b"" if it is not one of `METHODS`."""
    if data[0] == 71 and data[1] == 69 and data[2] == 84 and data[3] == 32:  # GET
        return _GET
    sp = data.find(b" ", 0, 8)
    method = data[:sp] if sp > 0 else b""
    return method if method in METHODS else b""


def _target_end(data: bytes, at: i64) -> i64:
    """Where the origin-form target starting at `at` ends, if ` HTTP/1.1` CRLF follows it;
    else -1."""
    if data[at] != 47:  # /
        return -1
    while TARGET[data[at]]:
        at += 1
    if not _spells(data, at, _VERSION):
        return -1
    return at


_VERSION: Final = b" HTTP/1.1\r\n"


def _spells(data: bytes, at: i64, text: bytes) -> bool:
    """Whether `text` is in `data` at `at` (compared in place: no slice made)."""
    n: i64 = len(text)
    if at + n > len(data):
        return False
    i: i64 = 0
    while i < n:
        if data[at + i] != text[i]:
            return False
        i += 1
    return True


def _read_fields(
    data: bytes, at: i64, ex: Exchange, max_headers: int, max_header_bytes: int
) -> bool:
    """Check the header lines from `at` to the head's last CRLF and read from them what the
    proxy reads of every request (`Host`, the header bytes); False at the first one not read
    here, or as soon as the head is past a limit (so a read of many small lines costs no more
    than the limits allow: `header_bytes` then says where it stopped). The (name, value) pairs
    are left in the head: `header_pairs` reads them if something asks (a decision not cached),
    and `named_pairs` those of some names, if `name_bits` says the request may have them."""
    end: i64 = len(data) - 2
    size: i64 = ex.header_bytes
    lines: i64 = 0
    bits: i64 = 0
    while at < end:
        colon, value, eol, h = _field(data, at, end + 2)
        if colon < 0:
            return False
        name = _name_at(data, at, colon, h)
        if len(name) == 0:  # (`not name` is a call through the C API)
            return False
        if name is _HOST:
            if ex.host is not None or not plain_host(data, value, eol):
                # Refused by proxy.server (400), not read here; so is a Host that is not
                # `uri-host [":" port]`, and those that are but not plainly so (an IP literal,
                # `%`, trailing OWS) are read there too (`http1.valid_host`).
                return False
            ex.host = data[value:eol]
        lines += 1
        bits |= _bit(h)
        size += colon - at + eol - value + 4
        if lines > max_headers or size > max_header_bytes:
            ex.header_bytes = size
            return False
        at = eol + 2
    ex.header_bytes = size
    ex.name_bits = bits
    return at == end


def header_pairs(head: bytes, at: i64) -> list[tuple[bytes, bytes]]:
    """The (lower-case name, value) pairs of the header lines of `head` from `at` to its end,
    a head that `read_request` read (its `raw_head`, lines known to be well formed), in order."""
    pairs: list[tuple[bytes, bytes]] = []
    end: i64 = len(head)
    while at < end:
        colon, value, eol, h = _field(head, at, end)
        if colon < 0:
            break  # (never, for such a head; but no loop here may depend on that)
        pairs.append((_name_at(head, at, colon, h), head[value:eol]))
        at = eol + 2
    return pairs


def _field(data: bytes, at: i64, end: i64) -> tuple[i64, i64, i64, i64]:
    """The header line `name ":" OWS value CRLF` that starts at `at` (and ends before `end`), as
    llhttp reads one (a token name, the value bytes it allows): (where its colon is, where its
    value starts, where its CRLF starts, the name's hash for `_name_at`); a colon of -1 if it is
    not one read here. Request and response lines alike."""
    line = at
    h: i64 = 0
    while at < end:
        c: i64 = data[at]
        if not TOKEN[c]:
            break
        h = _hash_step(h, c)
        at += 1
    if at == line or at >= end or data[at] != 58:  # :
        return -1, -1, -1, 0
    colon = at
    at += 1
    while at < end and (data[at] == 32 or data[at] == 9):  # OWS
        at += 1
    value = at
    while at < end and VALUE[data[at]]:
        at += 1
    if at + 1 >= end or data[at] != 13 or data[at + 1] != 10:
        return -1, -1, -1, 0
    return colon, value, at, h


def named_pairs(head: bytes, at: i64, names: frozenset[bytes]) -> tuple[tuple[bytes, bytes], ...]:
    """The pairs of `header_pairs(head, at)` whose names are in `names`, in order, without
    the others' (what the inbound router's decision cache needs of a request)."""
    found: tuple[tuple[bytes, bytes], ...] = ()
    end: i64 = len(head)
    while at < end:
        colon, value, eol, h = _field(head, at, end)
        if colon < 0:
            break  # (as in header_pairs)
        name = _name_at(head, at, colon, h)
        if name in names:
            found += ((name, head[value:eol]),)
        at = eol + 2
    return found


# A Content-Length with more digits than this goes to httptools (which reads up to 2**64 - 1).
_LENGTH_DIGITS: Final = 18
_DIGIT: Final = _table(b"0123456789")


def read_response(data: bytes, max_head: int) -> tuple[i64, bool, i64, i64, i64]:
    """If `data` is one whole response, plain, and nothing else: (where its head's last CRLF
    CRLF starts; whether the connection persists after it; where its header lines start; where
    its one `Connection` line starts and ends after its CRLF, -1 and -1 if it has none), which
    is all `proxy.upstream` needs to relay it. Else `NOT_READ`, for httptools. Plain is
    `HTTP/1.1 NNN reason` (200-599 but 204 and 304, whose framing is not their
    Content-Length), token names, the value bytes llhttp allows, exactly one Content-Length
    (digits only) that the rest of `data` fills, no hop-by-hop header but one `Connection:
    keep-alive` or `close`, and a head of at most `max_head` bytes. (Not for the response to a
    HEAD request, or to one that asked for an upgrade: the caller knows those.)"""
    end: i64 = len(data)
    if end < 19 or not data.startswith(b"HTTP/1.1 "):
        return NOT_READ
    if not (_DIGIT[data[9]] and _DIGIT[data[10]] and _DIGIT[data[11]]):
        return NOT_READ
    status: i64 = (data[9] - 48) * 100 + (data[10] - 48) * 10 + data[11] - 48
    if status < 200 or status > 599 or status == 204 or status == 304:  # noqa: PLR1714
        return NOT_READ
    at: i64 = 12
    if data[at] == 32:  # SP reason
        at += 1
        while at < end and VALUE[data[at]]:
            at += 1
    if at + 1 >= end or data[at] != 13 or data[at + 1] != 10:
        return NOT_READ
    fields: i64 = at + 2
    head, length, keep_alive, drop, drop_end = _response_fields(data, fields)
    if length < 0 or head > max_head or end != head + 4 + length:
        return NOT_READ
    return head, keep_alive, fields, drop, drop_end


NOT_READ: Final[tuple[i64, bool, i64, i64, i64]] = (-1, False, -1, -1, -1)


def _response_fields(data: bytes, at: i64) -> tuple[i64, int, bool, i64, i64]:
    """The header lines of `read_response` from `at` to the empty line that ends them:
    (where that line's CRLF starts less 2, so the head's last CRLF CRLF; Content-Length;
    persistence; where the `Connection` line starts and ends), or a length of -1 if one is not
    read here. Names are told by `http1.special_at`, as the upstream tells them: for most
    lines (`Content-Type`, `Date`, `Server`) a byte compared, nothing lower-cased."""
    end: i64 = len(data)
    length = -1
    keep_alive = True
    drop: i64 = -1
    drop_end: i64 = -1
    while at + 1 < end and data[at] != 13:
        colon, value, eol, _h = _field(data, at, end)
        if colon < 0:
            return _NO_FIELDS
        name = special_at(data, at, colon + 1)
        if len(name):  # (`if name` is a call through the C API)
            if name == b"content-length":
                first = length < 0
                length = _digits(data, value, eol)
                if not first or length < 0:
                    return _NO_FIELDS
            else:  # (a hop-by-hop name)
                persists: i64 = -1
                if name == b"connection":
                    persists = _persistence(data, value, eol)
                if persists < 0 or drop >= 0:
                    return _NO_FIELDS  # (another hop-by-hop header, or a second Connection)
                keep_alive = persists == 1
                drop, drop_end = at, eol + 2
        at = eol + 2
    if at + 1 >= end or data[at + 1] != 10:
        return _NO_FIELDS
    return at - 2, length, keep_alive, drop, drop_end


_NO_FIELDS: Final[tuple[i64, int, bool, i64, i64]] = (-1, -1, False, -1, -1)


def _persistence(data: bytes, start: i64, stop: i64) -> i64:
    """What the `Connection` value data[start:stop] says of the connection, read in place: 1
    (kept) for `keep-alive`, 0 for `close`, in any case; -1 if it is not one of these."""
    n = stop - start
    if n == 10 and spelled_at(data, start, b"keep-alive"):
        return 1
    if n == 5 and spelled_at(data, start, b"close"):
        return 0
    return -1


def _digits(data: bytes, start: i64, stop: i64) -> int:
    """The number data[start:stop] spells in decimal digits, -1 if it is not one (or too long)."""
    if stop == start or stop - start > _LENGTH_DIGITS:
        return -1
    n = 0
    for i in range(start, stop):
        if not _DIGIT[data[i]]:
            return -1
        n = n * 10 + data[i] - 48
    return n

"""The values a downstream connection works with: one `Exchange` per request, the `Router`
interface that decides where it goes, `Forward` (the decision to send it on) and `Limits`.

`Exchange` keeps per-request state as plain attributes over class-level defaults: a request
sets only the few that differ from the defaults, which is most of what it costs to create one
(this is on the request path, once per request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from mypy_extensions import i64, mypyc_attr

from proxy import http1
from proxy.http1 import Reply
from proxy.metrics import DirectionStats
from proxy.simplehead import header_pairs

# (At run time, not only for type checking: mypyc compiles `Forward` with its field types.)
from proxy.upstream import Target, UpstreamConnection


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    max_pipeline: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 60.0
    response_timeout: float = 30.0
    # Silence in both directions of an upgraded connection (a WebSocket) before it is closed;
    # 0: none. Longer than `idle_timeout`: WebSocket apps ping every 20-60 s, some not at all.
    tunnel_idle_timeout: float = 3600.0


@dataclass(frozen=True, slots=True)
class Forward:
    """Send the request to `target`, adding the serialised header lines in `extra`."""

    target: Target
    extra: bytes = b""


@mypyc_attr(allow_interpreted_subclasses=True)
class Router:
    """Decides where each request goes; pure apart from counting (no I/O).

    A compiled base class rather than a Protocol: the protocol calls `route` once per request,
    and a call through a Protocol is a method call by name (a lookup in the type, the
    arguments checked again by the callee's wrapper), where a base class's is a call through
    its vtable. Routers written in Python (the tests' fakes) subclass it too."""

    stats: DirectionStats

    def peer_of(self, transport: asyncio.BaseTransport) -> Any:
        raise NotImplementedError

    def route(self, ex: Exchange, peer: Any) -> Forward | Reply:
        raise NotImplementedError


class Headers(Mapping[str, str]):
    """Lower-case header names to values, as matches see them. A lookup scans the raw (name,
    value) pairs for the one name a match asks about; the whole map is decoded only if someone
    iterates it. Repeated headers are joined with commas (RFC 9110 §5.3). Values lose their
    trailing SP and HTAB, which are not part of a field value (RFC 9110 §5.5, as every
    conforming server reads it): `x-team: blue ` is `blue`."""

    __slots__ = ("_dict", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._dict: dict[str, str] | None = None

    def _d(self) -> dict[str, str]:
        if self._dict is None:
            d: dict[str, str] = {}
            for name, value in self._raw:
                key = name.decode("latin-1")
                text = http1.text(http1.field_value(value))
                d[key] = f"{d[key]},{text}" if key in d else text
            self._dict = d
        return self._dict

    def __getitem__(self, key: str) -> str:
        if self._dict is not None:
            return self._dict[key]
        want = _encoded(key)
        # Each line's value decoded on its own, then joined, as `_d` does: decoded after the
        # join, `\x80` and `é\x80\x80` (E9 80 80, UTF-8 for `退`) read as ISO 8859-1 together, so
        # a match read one value before the map was built and another after.
        values = [http1.text(http1.field_value(value)) for name, value in self._raw if name == want]
        if not values:
            raise KeyError(key)
        return values[0] if len(values) == 1 else ",".join(values)

    def __contains__(self, key: object) -> bool:
        if self._dict is not None or not isinstance(key, str):
            return key in self._d()
        want = _encoded(key)
        return any(name == want for name, _ in self._raw)

    def __iter__(self) -> Iterator[str]:
        return iter(self._d())

    def __len__(self) -> int:
        return len(self._d())

    def __bool__(self) -> bool:  # without decoding anything
        return bool(self._raw)


def _encoded(name: str) -> bytes | None:
    """A header name as the protocol stores it; None (matches nothing) if it cannot be one."""
    try:
        return name.encode("latin-1")
    except UnicodeEncodeError:
        return None


_NONE: Final[frozenset[bytes]] = frozenset()
_NO_LINES: Final[list[bytes]] = []
_NO_PAIRS: Final[list[tuple[bytes, bytes]]] = []


class Exchange:
    """One request and its response (Per-request state)."""

    # request head
    method = b""
    url = b""
    authority: bytes | None = None  # from a proxy-form target
    host: bytes | None = None
    header_bytes = 0
    chunked = False
    content_length = 0
    continue_ = False
    expect_upstream = False  # `Expect: 100-continue` is sent on, and the 100 relayed
    upgrade = False
    upgrade_value = b""
    keep_alive = True
    http10 = False
    hop = False  # a hop-by-hop header (or x-smi-source-identity) came with it
    raw_head: bytes | None = None  # the head as received, when it is forwarded as it came
    # Where raw_head's header lines start while `headers` is still to be read from them (a
    # head proxy.simplehead read: see `pairs`); -1 once `headers` holds them. Then also the
    # bits of its header names (`simplehead.name_bits`).
    fields_at: i64 = -1
    name_bits: i64 = 0
    # progress
    done = False  # the whole request has been read
    discard = False  # answered locally: drop the rest of the body
    started = False
    started_at = 0.0
    conn: UpstreamConnection | None = None
    route: Forward | None = None
    retried = False
    # response
    responded = False
    resp_chunked = False
    close_after = False
    status = 0
    reason = ""  # the router's reason code, for the access log

    def __init__(self, *, simple: bool = False) -> None:
        """`simple`: for a head that proxy.simplehead reads, whose lines and pairs stay in
        `raw_head` (see `pairs`): `lines` and `headers` start as the same empty lists for all
        of those (lists no code adds to: changes give them lists of their own), one list
        fewer made and freed each per request."""
        self.connection_names: frozenset[bytes] = _NONE  # named by `Connection`
        if simple:
            self.lines: list[bytes] = _NO_LINES
            self.headers: list[tuple[bytes, bytes]] = _NO_PAIRS
        else:
            self.lines = []  # forwarded header lines, serialised
            self.headers = []  # (lower-case name, value), for matching
        # framed body pieces waiting for an upstream (most requests have none)
        self.body: list[bytes] | None = None

    @property
    def method_str(self) -> str:
        return self.method.decode("latin-1")

    @property
    def path_str(self) -> str:
        return self.url.decode("latin-1")

    def pairs(self) -> list[tuple[bytes, bytes]]:
        """`headers`, the (lower-case name, value) pairs, read from the head the first time
        for a head proxy.simplehead read: most requests are never asked for them (no match
        of their destination reads a header, and their decision is cached)."""
        at = self.fields_at
        if at >= 0:
            self.fields_at = -1
            raw = self.raw_head
            assert raw is not None
            self.headers = header_pairs(raw, at)
        return self.headers

    def header_map(self) -> Mapping[str, str]:
        return Headers(self.pairs())

    def rewrite(self, drop: frozenset[bytes], trim: frozenset[bytes]) -> None:
        """Forward this request without the headers named in `drop` and with the values of
        those named in `trim` as matches read them (`http1.field_value`); the pairs a match
        sees change alike. Rare (`proxy.routing` asks only for headers some match names), so
        the head is rebuilt from its lines rather than forwarded as it came."""
        self.headers = [
            (name, http1.field_value(value) if name in trim else value)
            for name, value in self.pairs()
            if name not in drop
        ]
        raw = self.raw_head
        if raw is not None:
            # (Only a head with no hop-by-hop header, `Host` and an origin-form target is kept
            # whole: the request line and these lines say all it said.)
            self.raw_head = None
            data = raw[raw.find(b"\r\n") + 2 :]
        else:
            data = b"".join(self.lines)
        self.lines = http1.rewrite_lines(data, drop=drop, trim=trim)

    def head(self, forward: Forward) -> bytes:
        """The request head to send upstream."""
        raw = self.raw_head
        if raw is not None:
            return b"%s%s\r\n" % (raw, forward.extra)
        parts = [self.method, b" ", self.url, b" HTTP/1.1\r\n", *self.lines]
        if self.chunked:
            parts.append(http1.CHUNKED_HEADER)
        if self.expect_upstream:
            parts.append(http1.EXPECT_HEADER)
        if self.upgrade:
            value = http1.field_value(self.upgrade_value)  # as a match read it
            parts.append(http1.UPGRADE_HEADER + b"upgrade: %s\r\n" % value)
        if self.host is None:
            if self.authority is not None:
                parts.append(b"host: %s\r\n" % self.authority)
            else:
                # HTTP/1.0 without `Host`, sent on as HTTP/1.1, which must carry one (an app
                # may refuse the request without): the upstream's address, as nginx sends.
                host = forward.target.host.encode("ascii")
                if b":" in host:
                    host = b"[%s]" % host  # an IPv6 address
                parts.append(b"host: %s:%d\r\n" % (host, forward.target.port))
        parts.append(forward.extra)
        parts.append(b"\r\n")
        return b"".join(parts)

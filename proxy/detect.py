"""Protocol detection: HTTP or bytes, read from a caller's first bytes, where no rule decides.

An inbound port's protocol comes from the rules that cover it (`InboundRouter.protocol_for`):
TCPRoutes alone make it an L4 relay, HTTP rules make it HTTP. A port that no rule of this
workload covers says nothing of what it speaks. In `permissive` and `audit` mode, which let
everything through (DESIGN.md §3), it may carry anything — a database, a message broker — and
answering its bytes with `400 malformed-request` would deny what those modes promise to allow.
In deny mode it is refused whatever comes, but the refusal must be the authorization's: a
request gets its 403 naming the reason, other bytes a tcp deny, counted and closed (the HTTP
parser's 400 decided nothing). So there, as Linkerd's proxy does, the caller's first bytes
decide: what may start an HTTP/1 request goes to the HTTP path, anything else to the L4 relay
(authorized at connect, denied or counted as any relay).

The test leans to HTTP. The HTTP path removes any `x-smi-source-identity` a caller sends and
states the verified one (DESIGN.md §3: identity only from the certificate); a relay passes
every byte as it is, for as long as the connection lasts. So a connection is relayed only when
its first bytes cannot start a request for a server that wants a token for a method, even one
laxer than RFC 9112: the leading bytes skipped are every control character and whitespace
(Netty skips those, Python's `http.server` splits the line on any `str.isspace()`), the method
is any RFC 9110 token (Go takes any), and the separator after it any whitespace those servers
split on. Everything else takes the HTTP path: what may start such a request, bytes that still
may when detection ends (the byte bound, the timeout), and a caller that has sent nothing by
then. Such a server refuses a relay's first line as malformed and closes the connection
(Python's `http.server` and Go's do), so a request the caller sends after it is never read.
A server that takes any word for a method (`wsgiref`) cannot be protected so: once relayed, a
caller sends what it likes (docs/proxy.md says so).

Silence is never relayed. A caller that sends nothing within `DETECT_TIMEOUT` could, relayed,
send an HTTP request with a forged `x-smi-source-identity` a moment later and have it reach
the app as sent, or hold an app connection open with no bound at all; on the HTTP path its
header timeout closes it, and the app sees it only as a request. So server-speaks-first
protocols (MySQL, SMTP: the client waits for the app's greeting) do not work on a port no rule
covers: such a port needs a TCPRoute, which makes it L4 in every mode, as Linkerd needs such
ports marked opaque or skipped. Detection is per connection, never per caller's identity (see
`protocol_for`), and is asked again of the policy in use when it ends: a swap to rules that
cover the port meanwhile means no guess.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal, cast

from proxy.relay import FAR

if TYPE_CHECKING:
    from proxy.routing import InboundRouter
    from proxy.state import ServerState

Guess = Literal["http", "tcp"]

# How long the first bytes may take before the connection gets the HTTP path, whose header
# timeout then bounds it (a client that speaks first does so within a round trip; one that
# sent too little by then is an HTTP client to time out, or a protocol a TCPRoute must name).
DETECT_TIMEOUT: Final = 1.0
# The most bytes held while detecting: enough for any method token after a run of leading
# blank lines; a caller still undecided past it gets the HTTP path (and its limits).
DETECT_BYTES: Final = 1024

_CR: Final = 13
_LF: Final = 10
# What a lax HTTP/1 server skips before a request line: CR and LF (RFC 9112 §2.2), and the
# control characters and whitespace that Netty and Python's `http.server` skip too.
_SKIPPED: Final = frozenset(range(0x00, 0x21)) | frozenset(range(0x7F, 0xA1))
# RFC 9110 §5.6.2 tchar: what a method is made of.
_TOKEN: Final = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
# What ends a method on a request line as some server splits it: SP (RFC 9112 §3), and the
# other whitespace of `str.isspace()` (Python's `http.server`) and Java's (Netty) within a line.
# A CR ends one too unless an LF follows it (then the line held one word: no request).
_SEPARATORS: Final = frozenset(b" \t\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0")


def classify(data: bytes | bytearray) -> Guess | None:
    """ "http" when `data` may start an HTTP/1 request line (a method token and a separator,
    after any skipped bytes), "tcp" when it cannot, None while more bytes could still tell."""
    i, n = 0, len(data)
    while i < n and data[i] in _SKIPPED:
        i += 1
    start = i
    while i < n and data[i] in _TOKEN:
        i += 1
    if i == n:
        return None
    if i == start:
        return "tcp"  # (the first byte that counts can start no method)
    end = data[i]
    if end in _SEPARATORS:
        return "http"
    if end == _CR:
        if i + 1 == n:
            return None
        return "tcp" if data[i + 1] == _LF else "http"
    return "tcp"


# The choice when detection ends before `classify` made one, silence included: a relay would
# pass what such a caller sends later, a forged `x-smi-source-identity` too, as it is.
UNDECIDED: Final[Guess] = "http"


class Detect(asyncio.Protocol):
    """An inbound connection whose protocol its first bytes decide: holds them (up to
    `limit`), then hands the connection and them to the HTTP or L4 protocol. A `ServerState`
    connection meanwhile, so the ticker ends a silent wait and a drain closes it."""

    def __init__(
        self,
        *,
        router: InboundRouter,
        state: ServerState,
        http: Callable[[], asyncio.BaseProtocol],
        tcp: Callable[[], asyncio.BaseProtocol],
        timeout: float = DETECT_TIMEOUT,
        limit: int = DETECT_BYTES,
    ) -> None:
        self.router, self.state, self.http, self.tcp = router, state, http, tcp
        self.timeout, self.limit = timeout, limit
        # Per-connection state
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.held = bytearray()
        self.deadline = FAR
        self.chosen: asyncio.BaseProtocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.peer = self.router.peers.of(transport)
        # (The clock, not `state.now`: that is up to a tick old, which would cut the wait short.)
        self.deadline = time.monotonic() + self.timeout
        self.state.opened(self)

    def data_received(self, data: bytes) -> None:
        # (Only before the hand-over: the transport gives later reads to the chosen protocol.)
        self.held += data
        guess = classify(self.held[: self.limit + 1])
        if guess is None and len(self.held) > self.limit:
            guess = "http"
        if guess is not None:
            self._hand_over(guess)

    def eof_received(self) -> bool | None:
        """The caller ended its side while detection was on: decide now, and let the chosen
        protocol see the end, as it would have without detection."""
        if self.chosen is None:
            self._hand_over(classify(self.held) or UNDECIDED)
        if self.chosen is None:
            return None
        return self.chosen.eof_received()  # type: ignore[attr-defined,no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.state.closed(self)

    def on_deadline(self, now: float) -> None:
        """DETECT_TIMEOUT passed without a decision: silence too gets the HTTP path, whose
        header timeout then bounds it (see UNDECIDED)."""
        self._hand_over(UNDECIDED)

    def shutdown(self) -> None:
        """Draining: nothing has reached the app yet, so the connection just closes."""
        if self.transport is not None:
            self.transport.close()

    def _hand_over(self, guess: Guess) -> None:
        """Give the connection to the protocol for `guess`, unless the policy now in use
        names the port's protocol itself (a swap to rules that cover it)."""
        self.deadline = FAR
        transport = self.transport
        if transport is None or transport.is_closing() or self.chosen is not None:
            return  # (closed, or closing on a drain: nothing to hand over)
        named = self.router.protocol_for(self.peer)
        choice = guess if named == "detect" else named
        proto = self.chosen = self.tcp() if choice == "tcp" else self.http()
        transport.set_protocol(proto)
        proto.connection_made(transport)
        self.state.closed(self)  # (after: a drain must not see no connection in between)
        held, self.held = bytes(self.held), bytearray()
        if held and not transport.is_closing():
            proto.data_received(held)  # type: ignore[attr-defined]

"""The HTTPS client `smictl apply/get/delete` use to talk to `smictl serve`.

stdlib only (http.client + ssl), so the CLI needs nothing the server does not. The server's
certificate is verified against `--ca` / SMICTL_CA_FILE, else the CA `smictl certs init` wrote
to the state directory, else the system trust store. Connection failures become SMI7001,
certificate failures SMI7003, and refusals carry the server's reasons (SMI7002) — never a
traceback.

The local store API answers only the holder of the control plane's admin token
(`Authorization: Bearer`, docs/control-plane.md "Who may use the local store API"). The client
finds it without ceremony for the user who runs `smictl serve` on the same machine:
SMICTL_ADMIN_TOKEN_FILE if set, else `admin.token` beside the CA file it verifies the server
with (`--ca`, SMICTL_CA_FILE, or the state directory's `certs/ca.crt`), which is where `smictl
certs init` and `serve` write it. It is sent over https only; a 401 says where it was looked for.

Every request is bounded: one deadline (`timeout`) covers connecting, the TLS handshake,
sending and reading the whole answer, however slowly a server trickles it; an answer larger
than MAX_REPLY_BYTES is not read. A server that does not answer JSON (an HTML page, a login
redirect) is not a control plane: its 200 must never read as "applied".
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit

from smi.errors import Diagnostic, SMIError
from webhook.settings import default_state_dir

DEFAULT_SERVER = "https://127.0.0.1:8443"
DEFAULT_TIMEOUT = 60.0
# `smictl get` of 100,000 objects is well under this; a server streaming without end is not.
MAX_REPLY_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


# Names, not secrets: the file beside ca.crt in a certs directory, and the variable naming it.
ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105
ADMIN_TOKEN_ENV = "SMICTL_ADMIN_TOKEN_FILE"  # noqa: S105
# 32 random bytes are 43 URL-safe characters; a hand-made token must not be much weaker.
MIN_ADMIN_TOKEN_CHARS = 32


def default_ca_file() -> Path | None:
    env = os.environ.get("SMICTL_CA_FILE")
    if env:
        return Path(env)
    candidate = default_state_dir() / "certs" / "ca.crt"
    return candidate if candidate.is_file() else None


def read_admin_token(path: Path) -> str:
    """The admin token in `path` (surrounding whitespace dropped). OSError when it cannot be
    read, ValueError when its content cannot be a token: the server and the client read it
    with this one function, so what `serve` accepts is what `apply` sends."""
    text = path.read_text(encoding="ascii")  # UnicodeDecodeError is a ValueError
    token = text.strip()
    if not token:
        raise ValueError("the file is empty")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise ValueError("a token is one word of printable ASCII characters")
    if len(token) < MIN_ADMIN_TOKEN_CHARS:
        raise ValueError(f"shorter than {MIN_ADMIN_TOKEN_CHARS} characters")
    return token


@dataclass(frozen=True, slots=True)
class AdminToken:
    """The admin token the client found, or where it looked and why it found none."""

    path: Path
    source: str  # how the path was chosen, for the error that says where to put the token
    value: str | None = None
    problem: str = ""

    @classmethod
    def find(cls, *, token_file: Path | None, ca_file: Path | None) -> AdminToken:
        """An explicit `token_file`, else SMICTL_ADMIN_TOKEN_FILE, else `admin.token` beside
        the CA file the client verifies the server with."""
        env = os.environ.get(ADMIN_TOKEN_ENV)
        if token_file is not None:
            path, source = token_file, "--token-file"
        elif env:
            path, source = Path(env), ADMIN_TOKEN_ENV
        else:
            ca = ca_file or default_ca_file() or default_state_dir() / "certs" / "ca.crt"
            path, source = ca.parent / ADMIN_TOKEN_FILE, "beside the CA file"
        try:
            return cls(path, source, value=read_admin_token(path))
        except FileNotFoundError:
            return cls(path, source, problem="no such file")
        except OSError as exc:
            return cls(path, source, problem=exc.strerror or str(exc))
        except ValueError as exc:
            return cls(path, source, problem=str(exc))

    def hint(self, *, scheme: str) -> str:
        """Why a 401 happened from the client's side, and what to do: one clause."""
        where = f"{self.path} ({self.source})"
        if self.value is None:
            return (
                f"no admin token was sent: none readable at {where}: {self.problem}; the user "
                "who runs `smictl serve` has it in its certs directory (pass --ca with the CA "
                f"beside it, or set {ADMIN_TOKEN_ENV})"
            )
        if scheme != "https":
            return f"the admin token ({where}) is sent over https only"
        return (
            f"the admin token sent, from {where}, is not this control plane's; pass --ca with "
            f"the CA beside the right admin.token, or set {ADMIN_TOKEN_ENV}"
        )


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any]
    location: str = ""
    server: str = ""
    # For a 401: what the client sent and where it looked (AdminToken.hint).
    auth_hint: str = ""


class _Deadline:
    """Closes the connection's socket when the time is up, so that whatever call is blocked
    on it (connect, handshake, a header trickled a byte at a time) returns at once: a socket
    timeout only bounds each single read."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float) -> None:
        self.conn = conn
        self.expired = False
        # Held once connected: http.client drops `conn.sock` when the answer has no length
        # and hands the socket to the response, which is exactly when a body can trickle.
        self.sock: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        self.expired = True
        sock = self.sock or self.conn.sock
        if sock is not None:
            with suppress(OSError):
                # The plain socket's shutdown, also for an SSLSocket: it only touches the file
                # descriptor, never the SSL object another thread is reading with.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


@dataclass(frozen=True, slots=True)
class ControlPlaneClient:
    server: str = DEFAULT_SERVER
    ca_file: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    # The admin token's file when a command names it; else found by `AdminToken.find`.
    token_file: Path | None = None

    def request(
        self, method: str, path: str, *, body: Any = None, query: dict[str, str] | None = None
    ) -> Reply:
        url, port = self.parsed_url()
        target = url.path.rstrip("/") + path + (f"?{urlencode(query)}" if query else "")
        payload = _payload(body)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        token = AdminToken.find(token_file=self.token_file, ca_file=self.ca_file)
        # Never in clear text: over plain http (only ever a test server or a misconfigured
        # --server) the token would be readable by anyone on the path.
        if token.value is not None and url.scheme == "https":
            headers["Authorization"] = f"Bearer {token.value}"
        conn = self._connection(url.scheme, url.hostname or "", port)
        sent, response = False, None
        with _Deadline(conn, self.timeout) as deadline:
            try:
                conn.connect()
                deadline.sock = conn.sock
                conn.request(method, target, body=payload, headers=headers)
                sent = True
                response = conn.getresponse()
                raw = _read(response)
                if deadline.expired:  # a body without a length just ends when we close it
                    raise TimeoutError("timed out")
            except (OSError, http.client.HTTPException) as exc:
                failure = self._failure(exc, method=method, sent=sent, expired=deadline.expired)
                raise failure from exc
            finally:
                _close(conn, response, deadline.sock)
        return Reply(
            status=response.status,
            body=self._json(response, raw),
            location=response.getheader("Location") or "",
            server=self.server,
            auth_hint=token.hint(scheme=url.scheme) if response.status == 401 else "",
        )

    def parsed_url(self) -> tuple[SplitResult, int | None]:
        """The parsed --server, or one line saying what is wrong with it."""
        try:
            url = urlsplit(self.server.strip())
            port = url.port
        except ValueError as exc:
            raise SMIError(
                Diagnostic("SMI7001", f"--server {self.server!r} is not a valid URL: {exc}")
            ) from exc
        if url.scheme not in {"https", "http"} or not url.hostname:
            raise SMIError(Diagnostic("SMI7001", f"--server {self.server!r} is not an https URL"))
        return url, port

    def _connection(self, scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
        if scheme == "http":
            return http.client.HTTPConnection(host, port or 80, timeout=self.timeout)
        context = ssl.create_default_context()
        ca = self.ca_file or default_ca_file()
        if ca is not None:
            try:
                context.load_verify_locations(cafile=str(ca))
            except (OSError, ssl.SSLError) as exc:
                raise SMIError(Diagnostic("SMI7003", f"cannot read CA file {ca}: {exc}")) from exc
        return http.client.HTTPSConnection(host, port or 443, timeout=self.timeout, context=context)

    def _failure(self, exc: Exception, *, method: str, sent: bool, expired: bool) -> SMIError:
        """One line for a request that got no complete answer. Once a write was sent, the
        server may have committed it (all or nothing) before the connection broke: say so,
        rather than let "cannot reach" suggest that nothing happened."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return SMIError(
                Diagnostic(
                    "SMI7003",
                    f"the certificate of {self.server} is not trusted: {exc.verify_message}; "
                    "pass the control plane's CA with --ca (SMICTL_CA_FILE)",
                )
            )
        reason = f"no complete answer within {self.timeout:g}s" if expired else str(exc)
        reason = reason or type(exc).__name__
        if sent and method != "GET":
            message = (
                f"lost the control plane at {self.server} after sending the request ({reason}); "
                "it was applied entirely or not at all: check with `smictl get`"
            )
        else:
            message = f"cannot reach the control plane at {self.server}: {reason}"
        return SMIError(Diagnostic("SMI7001", message))

    def _json(self, response: http.client.HTTPResponse, raw: bytes) -> dict[str, Any]:
        """The answer as a JSON object. Every answer of smictl serve is one, errors included;
        a success that is not one comes from something else at that URL."""
        try:
            doc = json.loads(raw) if raw else {}
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict):
            return doc
        if 200 <= response.status < 300:
            raise not_a_control_plane(self.server, f"HTTP {response.status}, {_glimpse(raw)}")
        return {"error": _glimpse(raw) if raw else ""}


def _payload(body: Any) -> bytes | None:
    """`body` as JSON, or one line when it cannot be: Python's json writes NaN and the
    infinities as `NaN` and `Infinity`, which are no JSON (RFC 8259), and the server refuses
    the whole request for them. The commands refuse such values at their line first; this is
    the guard for any caller that does not."""
    if body is None:
        return None
    try:
        return json.dumps(body, allow_nan=False).encode()
    except ValueError as exc:
        raise SMIError(
            Diagnostic(
                "SMI2003",
                f"the request holds a value JSON cannot carry ({exc}); nothing was sent",
            )
        ) from exc


def _close(
    conn: http.client.HTTPConnection,
    response: http.client.HTTPResponse | None,
    sock: socket.socket | None,
) -> None:
    """Close everything a request opened, also when it failed half-way: the response owns the
    socket once http.client has handed it over."""
    if response is not None:
        response.close()
    conn.close()
    if sock is not None:
        sock.close()


def _read(response: http.client.HTTPResponse) -> bytes:
    """The whole body, refusing one larger than MAX_REPLY_BYTES before holding it in memory."""
    length = response.getheader("Content-Length") or ""
    if length.isascii() and length.isdigit() and int(length) > MAX_REPLY_BYTES:
        raise http.client.HTTPException(f"answer of {int(length)} bytes is too large")
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(_CHUNK):
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise http.client.HTTPException(
                f"answer larger than {MAX_REPLY_BYTES // (1024 * 1024)} MiB; "
                "is --server a smictl control plane?"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _glimpse(raw: bytes) -> str:
    """The start of a body that is not ours, on one line."""
    text = " ".join(raw[:200].decode(errors="replace").split())
    return repr(text) if text else "an empty body"


def not_a_control_plane(server: str, detail: str) -> SMIError:
    """The error for an answer that no smictl control plane gives."""
    return SMIError(
        Diagnostic(
            "SMI7001",
            f"{server} did not answer as a smictl control plane ({detail}); check --server "
            "(SMICTL_SERVER)",
        )
    )


def refused(reply: Reply) -> SMIError:
    """The error for a reply that is not a success, carrying the server's reason."""
    if 300 <= reply.status < 400:
        # smictl serve never redirects; a login page or a proxy in front of it does.
        where = f" to {reply.location}" if reply.location else ""
        return SMIError(
            Diagnostic(
                "SMI7001",
                f"the server answered HTTP {reply.status} (a redirect{where}), which a smictl "
                "control plane never does; check --server (SMICTL_SERVER)",
            )
        )
    reason = str(reply.body.get("error") or f"HTTP {reply.status}")
    if reply.status == 401 and reply.auth_hint:
        reason = f"{reason}; {reply.auth_hint}"
    return SMIError(Diagnostic("SMI7002", f"control plane refused the request: {reason}"))

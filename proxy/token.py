"""The workload's bearer token, read from its file at every use.

Why not once at start-up: the injected sidecar's token is a projected ServiceAccount token
(audience `smictl`, `expirationSeconds: 3600`), which the kubelet rewrites before it expires.
A token read once is refused by the control plane's TokenReview an hour later — so the first
certificate renewal (two thirds into a 24 h certificate) failed, and the sidecar's certificate
lapsed at 24 h; endpoint registrations, renewed every few seconds, failed after the hour.

The file is small and read only when a call needs it (a CSR, a registration renewal). If it
cannot be read, is empty (mid-rewrite) or holds something that is not a token, the last token
read is used and the failure logged: the control plane says whether that one is still good.

A token is one word of printable ASCII (a JWT is `[A-Za-z0-9-_.]`, a bootstrap token
`smi1.<id>.<secret>`): it goes into an `Authorization` header, where a CR or LF from the file
would end the header and start another one of the file's choosing.
"""

from __future__ import annotations

import logging
import os
import stat

log = logging.getLogger("smictl.proxy.token")

MAX_TOKEN_BYTES = 64 * 1024  # a ServiceAccount JWT is about 1 KB


class TokenError(ValueError):
    """The token file cannot be read, or does not hold a token that can be sent."""


def read_token(path: str) -> str:
    """The token in the file at `path`, its ends stripped (a trailing newline is common)."""
    # Not a plain open(): a FIFO would block it until a writer came (at start, or on the event
    # loop at every poll), and a device would never end. A projected token is a symlink to a
    # regular file, which this follows.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise TokenError(exc.strerror or str(exc)) from exc
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise TokenError("not a regular file")
            raw = f.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise TokenError(exc.strerror or str(exc)) from exc
    if len(raw) > MAX_TOKEN_BYTES:
        raise TokenError(f"larger than {MAX_TOKEN_BYTES} bytes")
    text = raw.strip()
    if not text:
        raise TokenError("empty")
    # The byte and its offset, never the token: the message goes to logs and terminals.
    bad = next((i for i, b in enumerate(text) if not 0x21 <= b <= 0x7E), None)
    if bad is not None:
        raise TokenError(
            f"byte {text[bad]:#04x} at offset {bad} of the token: a token is one word of "
            "printable ASCII characters"
        )
    return text.decode("ascii")


class BearerToken:
    def __init__(self, path: str | None, value: str = "") -> None:
        self.path = path
        self.value = value

    def __call__(self) -> str:
        if self.path is None:
            return self.value
        try:
            self.value = read_token(self.path)
        except TokenError as exc:
            log.warning(
                "cannot use the token file %s (%s): using the last token read", self.path, exc
            )
        return self.value


def bearer(token: str | BearerToken) -> BearerToken:
    """A fixed token (tests, `--token-file` read by the caller) as a BearerToken."""
    return token if isinstance(token, BearerToken) else BearerToken(None, token)

"""The workload's bearer token, read from its file at every use.

Why not once at start-up: the injected sidecar's token is a projected ServiceAccount token
(audience `smictl`, `expirationSeconds: 3600`), which the kubelet rewrites before it expires.
A token read once is refused by the control plane's TokenReview an hour later — so the first
certificate renewal (two thirds into a 24 h certificate) failed, and the sidecar's certificate
lapsed at 24 h; endpoint registrations, renewed every few seconds, failed after the hour.

The file is small and read only when a call needs it (a CSR, a registration renewal). If it
cannot be read, is empty (mid-rewrite) or holds something that is not a token, the last token
read is used and the failure logged: the control plane says whether that one is still good.

What a token file may hold is `smi.tokens.read_token`'s rule, shared with `smictl admit`.
"""

from __future__ import annotations

import logging

from smi.tokens import MAX_TOKEN_BYTES, TokenError, read_token

log = logging.getLogger("smictl.proxy.token")

__all__ = ["MAX_TOKEN_BYTES", "BearerToken", "TokenError", "bearer", "read_token"]


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

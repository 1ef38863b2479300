"""The workload's bearer token, read from its file at every use.

Why not once at start-up: the injected sidecar's token is a projected ServiceAccount token
(audience `smictl`, `expirationSeconds: 3600`), which the kubelet rewrites before it expires.
A token read once is refused by the control plane's TokenReview an hour later — so the first
certificate renewal (two thirds into a 24 h certificate) failed, and the sidecar's certificate
lapsed at 24 h; endpoint registrations, renewed every few seconds, failed after the hour.

The file is small and read only when a call needs it (a CSR, a registration renewal). If it
cannot be read, or is empty (mid-rewrite), the last token read is used and the failure logged:
the control plane says whether that one is still good.
"""

from __future__ import annotations

import logging

log = logging.getLogger("smictl.proxy.token")

MAX_TOKEN_BYTES = 64 * 1024  # a ServiceAccount JWT is about 1 KB


class BearerToken:
    def __init__(self, path: str | None, value: str = "") -> None:
        self.path = path
        self.value = value

    def __call__(self) -> str:
        if self.path is None:
            return self.value
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read(MAX_TOKEN_BYTES + 1).strip()
        except (OSError, UnicodeDecodeError) as exc:
            log.warning(
                "cannot read the token file %s (%s): using the last token read", self.path, exc
            )
            return self.value
        if len(text) > MAX_TOKEN_BYTES:
            log.warning(
                "the token file %s is larger than %d bytes: using the last token read",
                self.path,
                MAX_TOKEN_BYTES,
            )
        elif text:
            self.value = text
        return self.value


def bearer(token: str | BearerToken) -> BearerToken:
    """A fixed token (tests, `--token-file` read by the caller) as a BearerToken."""
    return token if isinstance(token, BearerToken) else BearerToken(None, token)

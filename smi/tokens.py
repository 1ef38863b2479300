"""A bearer token read from a file: the one rule for what a token file may hold, shared by the
proxy (`--token-file`, re-read for every call) and `smictl admit --opa-token-file`.

A token is one word of printable ASCII (a JWT is `[A-Za-z0-9-_.]`, a bootstrap token
`smi1.<id>.<secret>`): it goes into an `Authorization` header, where a CR or LF from the file
would end the header and start another one of the file's choosing. Standard library only: the
sidecar imports this, and its memory is budgeted.
"""

from __future__ import annotations

import os
import stat

MAX_TOKEN_BYTES = 64 * 1024  # a ServiceAccount JWT is about 1 KB


class TokenError(ValueError):
    """The token file cannot be read, or does not hold a token that can be sent."""


class TokenContentError(TokenError):
    """The file was read, and holds no token (empty, or not one word of printable ASCII)."""


def read_token(path: str | os.PathLike[str], *, pipe: bool = False) -> str:
    """The token in the file at `path`, its ends stripped (a trailing newline is common).

    A regular file only, opened without blocking: a FIFO would block the open until a writer
    came (at start, or on the proxy's event loop at every poll), and a device would never end.
    `pipe`: a command line's `<(cat tok)` is a pipe, read once, blocking, as a shell gives it.
    A projected token is a symlink to a regular file, which this follows."""
    flags = os.O_RDONLY | os.O_CLOEXEC | (0 if pipe else os.O_NONBLOCK)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise TokenError(exc.strerror or str(exc)) from exc
    try:
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not (stat.S_ISREG(mode) or (pipe and stat.S_ISFIFO(mode))):
                raise TokenError("not a regular file")
            raw = f.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise TokenError(exc.strerror or str(exc)) from exc
    if len(raw) > MAX_TOKEN_BYTES:
        raise TokenError(f"larger than {MAX_TOKEN_BYTES} bytes")
    text = raw.strip()
    if not text:
        raise TokenContentError("empty")
    # The byte and its offset, never the token: the message goes to logs and terminals.
    bad = next((i for i, b in enumerate(text) if not 0x21 <= b <= 0x7E), None)
    if bad is not None:
        raise TokenContentError(
            f"byte {text[bad]:#04x} at offset {bad} of the token: a token is one word of "
            "printable ASCII characters"
        )
    return text.decode("ascii")

"""Files written whole or not at all, safely in a directory other users can write to.

Every file smictl replaces (keys, certificates, `admit -o`'s report, the proxy's ports file,
the control plane's address file) is written to a new temporary file beside it, flushed to
disk, and renamed over it: a reader sees the old file or the whole new one. The temporary
file has an unpredictable name and is created exclusively, never through a symlink
(O_EXCL | O_NOFOLLOW, mode 0600 until it is written): a predictable `<name>.tmp` opened with
O_TRUNC let another user who can write to the directory create it first and keep it open
(and read the private key written into it), or make it a symlink (and have smictl overwrite
the file it points to).

`tempfile.mkstemp` does the same; neither it nor `pathlib` is imported here, since the proxy
uses this module and its memory is budgeted (tests/unit/proxy/test_proxy_imports.py):
`tempfile` brings `shutil`, `bz2` and `lzma`, `pathlib` brings `urllib.parse` and `ipaddress`.
"""

from __future__ import annotations

import contextlib
import errno
import os

_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def write_atomically(target: str | os.PathLike[str], data: bytes, *, mode: int) -> None:
    """Replace `target` with a file of `data` and permission bits `mode`, or leave it as it
    was (no temporary file left behind either)."""
    tmp = stage(target, data, mode=mode)
    try:
        os.replace(tmp, target)
    except BaseException:
        discard(tmp)
        raise


def stage(target: str | os.PathLike[str], data: bytes, *, mode: int) -> str:
    """A new file beside `target` holding `data` (mode `mode`, on disk), for the caller to
    rename over `target` (or `discard`). Nothing is left behind when it fails."""
    fd, tmp = _create_beside(os.fspath(target))
    try:
        with os.fdopen(fd, "wb") as out:
            # The file was made 0600 (less under the umask); the wanted mode is set before
            # the data is in it, on the descriptor (not a name someone could swap).
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        discard(tmp)
        raise
    return tmp


def discard(tmp: str) -> None:
    """Remove a staged file that will not be renamed, if it is still there."""
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def new_file_mode() -> int:
    """The mode `open(name, "w")` would give a new file: 0666 less the umask (a report or a
    ports file is as readable as any other file the user creates; only keys are private)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _create_beside(target: str) -> tuple[int, str]:
    directory, name = os.path.split(target)
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, _FLAGS, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", directory or ".")

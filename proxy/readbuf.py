"""TLS connections read into one buffer shared by the process, instead of a new one per read.

uvloop's TLS layer hands a plain protocol its data by calling `ssl.SSLObject.read(256 KiB)`
for every record: a 256 KiB bytes object, which glibc serves with `mmap`, shrinks with `mremap`
and returns with `munmap` — three system calls (and a page fault) per read, measured with
strace on the inbound proxy of the mTLS pair: one of each per request. A protocol with
`get_buffer`/`buffer_updated` that is not an `asyncio.Protocol` is read into the buffer it
provides instead (`SSLObject.read(n, buffer)`, no allocation).

The buffer is shared: a read fills it and `buffer_updated` copies the bytes out before anything
else runs, so no two connections ever need it at once, and the process holds 64 KiB however
many connections it has (allocated on the first TLS read, so an idle proxy does not hold it).

The TLS protocols implement `get_buffer` and `buffer_updated` with `buffer()` and `take()`:
`server.TlsHttpProxy` and `upstream.TlsUpstreamConnection` spell the two methods out (they are
compiled with mypyc, whose classes take one base), `tcp` mixes in `SharedReadBuffer`.
"""

from __future__ import annotations

from typing import Final

SIZE: Final = 64 * 1024  # TLS records are at most 16 KiB; a fuller read is continued by uvloop

_view: memoryview | None = None


def buffer() -> memoryview:
    """The shared buffer, for `get_buffer`."""
    global _view  # noqa: PLW0603 - one per process, made on first use
    if _view is None:
        _view = memoryview(bytearray(SIZE))
    return _view


def take(nbytes: int) -> bytes:
    """The `nbytes` just read into the shared buffer, copied out (for `buffer_updated`)."""
    return buffer()[:nbytes].tobytes()

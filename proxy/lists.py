"""Lists that hold one item at a time without an allocation per item.

A connection's pending writes, its queue of requests and a target's idle connections each hold
one item at a time in the usual case, and are emptied at every request. CPython gives an empty
list no room for items and its first append room for four; emptied by a pop, a list of four
slots with none used is shrunk to none (fewer than half are used). So every request allocated
and freed the room of each of these lists, in allocator code and state that a request finding
its caches cold fetches again (docs/proxy.md, "The mTLS pair, counted whole").

A list made with one item has room for exactly one. Emptied by a pop it keeps it (no item in
one slot is not fewer than half), and the next append fills it again. A list that grew past one
slot (a pipelined request, a second idle connection) is grown and shrunk as any other: this
changes what is allocated, never what a list holds.
"""

from __future__ import annotations

from typing import Any


def one_slot() -> list[Any]:
    """An empty list with room for one item."""
    room: list[Any] = [None]
    room.pop()
    return room


def drained(out: list[bytes]) -> tuple[bytes, list[bytes]]:
    """(what `out` holds as one bytes object, the list to append to from now on), `out`
    left empty: one piece (the usual case) is popped, not joined, and `out` kept with its one
    slot; several are joined and a new list with one slot comes back (not `out.clear()`: that
    is slice assignment in the C API, code no other step of a request runs)."""
    pending = len(out)
    if pending == 1:
        return out.pop(), out
    if pending:
        return b"".join(out), one_slot()
    return b"", out

"""Back-pressure: pause reading a transport for any of several reasons, resume when none is left.

A downstream connection stops reading while its upstream's write buffer is above the high-water
mark, while a pipelined request waits its turn, and while an upstream connection is being
opened; each of these resumes independently, so the reasons are bits of one mask (the way
uvicorn's `FlowControl` pauses past a high-water mark, extended to several causes).
"""

from __future__ import annotations

import asyncio
from typing import Final

# Why reading is paused (bits).
PEER_BUSY: Final = 1  # the other side's write buffer is above its high-water mark
PIPELINE: Final = 2  # a pipelined request is queued behind the one in flight
CONNECTING: Final = 4  # waiting for an upstream connection
UPGRADE: Final = 8  # an upgrade is waiting for the upstream's 101

HIGH_WATER: Final = 64 * 1024
LOW_WATER: Final = 16 * 1024


class FlowControl:
    __slots__ = ("_transport", "reasons")

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self.reasons = 0

    @property
    def paused(self) -> bool:
        return self.reasons != 0

    def pause(self, reason: int) -> None:
        if not self.reasons and not self._transport.is_closing():
            self._transport.pause_reading()  # type: ignore[attr-defined]
        self.reasons |= reason

    def resume(self, reason: int) -> None:
        if not self.reasons & reason:
            return
        self.reasons &= ~reason
        if not self.reasons and not self._transport.is_closing():
            self._transport.resume_reading()  # type: ignore[attr-defined]

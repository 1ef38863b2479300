"""The range a port is in, 1-65535, for every check that holds a port to it.

The loader (a Service's ports), validation (a TrafficTarget's destination port, a TCPRoute's
or UDPRoute's ports), `smictl explain --port`, the compiler (endpoints, and a MeshPolicy read
back) ask it here, so that they cannot come to disagree on a bound, and SMI2301 reads the
same wherever it is said. Port 0 ("any port" to `bind`) is no port a peer can dial.
"""

from __future__ import annotations

from typing import Final

PORT_RANGE: Final = "1-65535"
LAST_PORT: Final = 65535


def is_port(value: int) -> bool:
    return 0 < value <= LAST_PORT


def not_a_port(value: int) -> str:
    """SMI2301's message for an integer `is_port` refuses (a huge one shortened: the message
    is one line of a report, whatever a file holds)."""
    text = str(value) if abs(value) < 10**12 else f"{str(value)[:12]}..."
    return f"port {text} is not in {PORT_RANGE}"

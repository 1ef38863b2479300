"""`smictl serve --bind [::1]:0`: the control plane on an IPv6 address (an IPv6-only cluster
binds `[::]`). The address it writes for callers (--address-file, the `listening` log line)
must be a URL they can use: `https://::1:PORT` is not one, `https://[::1]:PORT` is."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from control_plane_harness import Server

pytestmark = pytest.mark.integration


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no ::1 here")
def test_an_ipv6_bind_is_announced_as_a_usable_url(tmp_path: Path) -> None:
    server = Server(tmp_path).start(workers=1, extra=("--bind", "[::1]:0"))
    try:
        parts = urlsplit(server.url)
        assert parts.hostname == "::1" and parts.port is not None and parts.port > 0
        assert server.session().get(f"{server.url}/readyz", timeout=5).status_code == 200
    finally:
        server.stop()

"""Upgraded connections (after a 101) are not held forever: a tunnel silent both ways for
`--tunnel-idle-timeout` is closed, and a peer that takes none of the bytes sent to it is cut
off after `--idle-timeout`, as for any stream; a tunnel in use, or read slowly, stays."""

from __future__ import annotations

import argparse
import asyncio

import pytest
from proxy_fakes import Harness

from proxy.cli import register
from proxy.config import from_args
from proxy.exchange import Limits
from proxy.relay import LINGER_SECONDS
from smi.cli import main

UPGRADE = b"GET /ws HTTP/1.1\r\nHost: w\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
SWITCHED = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


async def _tunnel(limits: Limits) -> tuple[Harness, float]:
    """A WebSocket-style tunnel through the proxy, checked to relay both ways."""
    h = Harness(limits=limits)
    h.send(UPGRADE)
    await h.settle()
    h.respond(SWITCHED)
    assert h.proxy.tunnel is not None
    h.send(b"\x81\x02hi")
    assert h.up().data.endswith(b"\x81\x02hi")
    h.respond(b"\x81\x02ho")
    assert h.down.data.endswith(b"\x81\x02ho")
    return h, h.state.now


def _ends_closed(h: Harness) -> tuple[bool, bool]:
    """Whether the client's and the app's connections are closed (or aborted)."""
    return h.down.closed, h.up().closed


async def test_a_tunnel_silent_both_ways_is_closed_after_the_tunnel_idle_timeout() -> None:
    h, t0 = await _tunnel(Limits(idle_timeout=60, tunnel_idle_timeout=600))
    h.state.check(t0 + 599)
    assert _ends_closed(h) == (False, False)
    h.state.check(t0 + 601)
    assert _ends_closed(h) == (True, True)
    assert not h.down.aborted and not h.up().aborted  # silent: nothing was owed either way
    assert h.metrics.inbound.errors == {"tunnel-idle": 1}


async def test_a_closed_tunnel_whose_peers_do_not_read_is_aborted_after_two_seconds() -> None:
    """What was queued for them when the tunnel was closed (below the high-water mark: no
    back-pressure) is given LINGER_SECONDS to be read; then both connections are aborted."""
    h, t0 = await _tunnel(Limits(idle_timeout=60, tunnel_idle_timeout=600))
    h.down.stalled = h.up().stalled = True
    h.state.check(t0 + 601)
    assert h.down.closed and not h.down.aborted and not h.up().aborted
    await asyncio.sleep(LINGER_SECONDS + 0.2)
    assert h.down.aborted and h.up().aborted


async def test_bytes_either_way_keep_the_tunnel_open() -> None:
    h, t0 = await _tunnel(Limits(idle_timeout=60, tunnel_idle_timeout=600))
    h.state.check(t0 + 400)
    h.send(b"ping")  # the client
    h.state.check(t0 + 800)
    h.respond(b"pong")  # the app
    h.state.check(t0 + 1300)
    assert _ends_closed(h) == (False, False)
    h.state.check(t0 + 1401)
    assert _ends_closed(h) == (True, True)


async def test_a_tunnel_idle_timeout_of_zero_never_closes_a_silent_tunnel() -> None:
    h, t0 = await _tunnel(Limits(idle_timeout=60, tunnel_idle_timeout=0))
    h.state.check(t0 + 30 * 86400.0)
    assert _ends_closed(h) == (False, False)
    assert h.metrics.inbound.errors == {}


async def test_a_client_that_stops_reading_is_cut_off_after_the_idle_timeout() -> None:
    """It goes on sending (the app takes that), but takes none of what the app sends it."""
    h, t0 = await _tunnel(Limits(idle_timeout=60, tunnel_idle_timeout=3600))
    h.respond(b"x" * 70000)
    h.down.stalled = True
    h.proxy.pause_writing()
    assert not h.up().reading
    for t in range(10, 60, 10):
        h.send(b"still talking")
        h.state.check(t0 + t)
    assert _ends_closed(h)[0] is False
    h.state.check(t0 + 76)
    assert h.down.aborted and h.up().aborted
    assert h.metrics.inbound.errors == {"client-stalled": 1}


async def test_an_app_that_stops_reading_is_cut_off_after_the_idle_timeout() -> None:
    h, t0 = await _tunnel(Limits(idle_timeout=60, tunnel_idle_timeout=3600))
    h.up().stalled = True
    h.send(b"y" * 70000)
    h.upstreams[-1].pause_writing()
    assert not h.down.reading
    h.state.check(t0 + 30)
    assert _ends_closed(h)[0] is False
    h.state.check(t0 + 76)
    assert h.down.aborted and h.up().aborted
    assert h.metrics.inbound.errors == {"upstream-stalled": 1}


async def test_a_client_that_reads_slowly_keeps_its_tunnel() -> None:
    h, t0 = await _tunnel(Limits(idle_timeout=60, tunnel_idle_timeout=3600))
    h.respond(b"x" * 70000)
    h.down.stalled = True
    h.proxy.pause_writing()
    for t in range(30, 300, 30):  # a little taken every 30 s: progress each time
        h.down.writes[-1] = h.down.writes[-1][:-1000]
        h.state.check(t0 + t)
    assert _ends_closed(h)[0] is False
    h.down.stalled = False
    h.proxy.resume_writing()
    assert h.up().reading
    h.respond(b"more")
    assert h.down.data.endswith(b"more")
    assert h.metrics.inbound.errors == {}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    base = ["proxy", "--identity", "shop/web", "--inbound", "1:2", "--policy", "p.json"]
    return parser.parse_args([*base, "--ca", "ca.pem", "--cert", "c", "--key", "k", *argv])


def test_the_flag_and_its_variable_set_the_tunnel_idle_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert from_args(_parse([])).limits.tunnel_idle_timeout == 3600.0
    assert from_args(_parse(["--tunnel-idle-timeout", "0"])).limits.tunnel_idle_timeout == 0.0
    monkeypatch.setenv("SMI_PROXY_TUNNEL_IDLE_TIMEOUT", "90")
    assert from_args(_parse([])).limits.tunnel_idle_timeout == 90.0


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
def test_a_bad_tunnel_idle_timeout_is_one_line_naming_the_flag(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["proxy", "--tunnel-idle-timeout", value, "--identity", "shop/web"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"smictl proxy: --tunnel-idle-timeout: {value!r} is not 0 (none) or a positive number "
        "of seconds (SMI7101)"
    ]


def test_the_help_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["proxy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--tunnel-idle-timeout SECONDS" in text and "(WebSocket) with no bytes" in text

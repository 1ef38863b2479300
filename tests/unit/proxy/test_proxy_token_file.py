"""proxy.token: what the token file holds goes into an `Authorization` header, so only one word
of printable ASCII is sent. A file rewritten to hold a line break (`tok\\r\\nX-Injected: 1`)
would otherwise end the header and add one of its own to every policy poll, CSR and
registration; at run time such a file keeps the last good token, as an empty one does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from control_plane_fakes import control_plane, http_response

from proxy.metrics import Metrics
from proxy.policy import ControlPlaneSource, PolicyHolder
from proxy.token import BearerToken

INJECTED = b"tok\r\nX-Injected: 1"


async def test_a_token_file_with_a_line_break_adds_no_header_to_a_poll(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text("good\n")
    async with control_plane(lambda n: http_response(304)) as (url, heads):
        source = ControlPlaneSource(url, PolicyHolder(Metrics()), token=BearerToken(str(path)))
        await source.poll_once()
        path.write_bytes(INJECTED)  # rewritten by whoever can write the token's volume
        with caplog.at_level(logging.WARNING, logger="smictl.proxy.token"):
            await source.poll_once()
    assert len(heads) == 2
    for head in heads:
        lines = head.decode("latin-1").lower().split("\r\n")
        assert "authorization: bearer good" in lines
        assert not any(line.startswith("x-injected") for line in lines)
    # Logged, naming the file and the byte, never the file's text.
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot use the token file {path} (byte 0x0d at offset 3 of the token: a token is one "
        "word of printable ASCII characters): using the last token read"
    ]


@pytest.mark.parametrize(
    "content",
    [
        INJECTED,
        b"tok\nX-Injected: 1",
        b"two words",
        b"tab\tinside",
        b"nul\x00inside",
        b"del\x7finside",
        "n\u00f6n-ascii".encode(),
        b"\xff\xfe",
    ],
    ids=["crlf", "lf", "space", "tab", "nul", "del", "non-ascii", "not-utf8"],
)
def test_a_file_that_holds_no_token_keeps_the_last_good_one(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token"
    path.write_text("smi1.abc.def\n")
    token = BearerToken(str(path), "at-start")
    assert token() == "smi1.abc.def"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="smictl.proxy.token"):
        assert token() == "smi1.abc.def"
    assert len(caplog.records) == 1 and str(path) in caplog.records[0].getMessage()
    path.write_text("smi1.abc.ghi")  # the next good rewrite is used again
    assert token() == "smi1.abc.ghi"


def test_real_tokens_are_read_as_they_are(tmp_path: Path) -> None:
    """A ServiceAccount JWT (base64url parts and dots) and a bootstrap token, with the
    trailing newline an editor or `echo` adds: nothing real is refused."""
    jwt = (
        "eyJhbGciOiJSUzI1NiIsImtpZCI6Ik1fX3QifQ.eyJhdWQiOlsic21pY3RsIl0sInN1YiI6InN5c3RlbTpz"
        "ZXJ2aWNlYWNjb3VudDpzaG9wOndlYiJ9.Zm9v-YmFy_YmF6"
    )
    path = tmp_path / "token"
    for text in (jwt, f"{jwt}\n", "smi1.0123abcd.s3cr3t-_~+/=\r\n"):
        path.write_text(text)
        assert BearerToken(str(path), "old")() == text.strip()

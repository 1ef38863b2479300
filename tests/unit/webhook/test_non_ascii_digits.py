"""`str.isdigit()` is true for `²` and `٣`, which `int()` refuses or reads as a number: a
check by isdigit alone let `fd://²` reach gunicorn ("not a valid file descriptor"), `--inbound
²:8080` end the proxy CLI with an internal error (exit 70), and `/v1/data/x/²` raise in the
Data API. Only ASCII digits are numbers here."""

from __future__ import annotations

import pytest

from proxy.config import ProxyConfigError, _port
from webhook.cli import _bind_problem
from webhook.opa import _below


@pytest.mark.parametrize("text", ["²", "٣", "８０"])
def test_a_port_of_other_digits_is_no_port(text: str) -> None:
    with pytest.raises(ProxyConfigError, match="is not a port number"):
        _port(text, "--inbound")
    assert _port(" 8080 ", "--inbound") == 8080


def test_fd_takes_ascii_digits_only() -> None:
    assert _bind_problem("fd://²") == "fd://N takes a file descriptor number"
    assert _bind_problem("fd://3") is None


def test_a_data_api_path_of_other_digits_is_undefined_not_an_error() -> None:
    assert _below({"x": [1, 2, 3]}, "x/²") == (False, None)
    assert _below({"x": [1, 2, 3]}, "x/2") == (True, 3)

"""A remote OPA (or smictl's own OPA-compatible Data API) as the Rego engine.

`RemoteOPA(url)` asks `POST <url>/v1/data/<package path>/violation` with `{"input": ...}`
through opa-python-client, one request per policy. The server must hold the same policies (the
local files still give each policy's name, code and enforcement). OPA answers `{}` for an
undefined document: no violation, as in the embedded engine. A server that cannot be reached,
answers an error, or answers something that is not a result becomes an `EvalOutcome` with an
error (SMI5006 / SMI5003), which the admission chain turns into a denial for `deny` policies
(fail closed); nothing here raises to the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from smi.errors import PolicyError
from smi.policy.engine import EvalOutcome, outcome_of_value

UNREACHABLE = "SMI5006"


class RemoteOPA:
    """An `Engine` that evaluates over HTTP(S) against an OPA Data API."""

    def __init__(self, url: str, *, timeout: float = 2.0, retries: int = 0) -> None:
        from opa_client import OpaClient

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PolicyError.of(UNREACHABLE, f"not an http(s) URL: {url!r}")
        if parts.path not in ("", "/"):
            raise PolicyError.of(
                UNREACHABLE, f"give the server's root URL, without a path: {url!r}"
            )
        self.url = url.rstrip("/")
        self._client = OpaClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            ssl=parts.scheme == "https",
            timeout=timeout,
            retries=retries,
        )

    def close(self) -> None:
        self._client.close_connection()

    def evaluate(
        self, entrypoints: Sequence[str], input_doc: Mapping[str, Any]
    ) -> list[EvalOutcome]:
        return [self._query(e, input_doc) for e in entrypoints]

    def _query(self, entrypoint: str, input_doc: Mapping[str, Any]) -> EvalOutcome:
        import requests

        try:
            answer = self._client.query_rule(input_data=dict(input_doc), package_path=entrypoint)
        except requests.ConnectionError as exc:
            return EvalOutcome(error=f"OPA at {self.url} unreachable ({UNREACHABLE}): {_why(exc)}")
        except requests.Timeout:
            return EvalOutcome(error=f"OPA at {self.url} did not answer in time ({UNREACHABLE})")
        except requests.HTTPError as exc:
            return EvalOutcome(error=f"OPA at {self.url} answered {_http_detail(exc)}")
        except (requests.RequestException, ValueError) as exc:
            return EvalOutcome(error=f"OPA at {self.url}: {type(exc).__name__}: {exc}")
        if not isinstance(answer, dict):
            return EvalOutcome(error=f"OPA at {self.url} answered a {type(answer).__name__}")
        return outcome_of_value(answer.get("result"))


def _why(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out"):
        if marker in text:
            return marker
    return type(exc).__name__


def _http_detail(exc: Any) -> str:
    response = getattr(exc, "response", None)
    if response is None:
        return str(exc)
    try:
        body = response.json()
        message = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return f"HTTP {response.status_code}" + (f": {message}" if message else "")

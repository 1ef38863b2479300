"""A remote OPA (or smictl's own OPA-compatible Data API) as the Rego engine.

`RemoteOPA(url)` asks `POST <url>/v1/data/<package path>/violation` with `{"input": ...}`
through opa-python-client, one request per policy. The server must hold the same policies (the
local files still give each policy's name, code and enforcement); `missing_packages` checks that
when the set is loaded. OPA answers `{}` for an undefined document: no violation, as in the
embedded engine. A server that cannot be reached,
answers an error, or answers something that is not a result becomes an `EvalOutcome` with an
error (SMI5006 / SMI5003), which the admission chain turns into a denial for `deny` policies
(fail closed); nothing here raises to the caller.

Bounded: the request goes through the client's own session (its retries, TLS verification and
headers), but without following redirects (a 3xx would hand the input document to another
server, or turn the POST into a GET whose answer is not a decision), with a deadline for the
whole answer (`timeout`; requests' own timeout is per read, so a server that trickles one byte
a second would hold the caller forever) and at most `max_body` bytes read.

TLS: an https server is verified against the system's CAs, or against `ca_file` (`--opa-ca`):
smictl serve's own Data API has a certificate from the mesh CA, which no system trusts, and the
only way to give it was REQUESTS_CA_BUNDLE, which also changes every other request the process
makes. The file is checked when the engine is made (`ca_file_problem`), not at the first
evaluation, where a bad one was an SSLError per policy.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from smi.errors import PolicyError
from smi.policy.engine import EvalOutcome, outcome_of_value
from smi.urls import http_url

UNREACHABLE = "SMI5006"
CERTIFICATE = "SMI7003"
MAX_BODY = 16 << 20


def ca_file_problem(path: Path) -> str | None:
    """Why `path` cannot verify a TLS server (unreadable, or no PEM certificate in it), or
    None. Checked by loading it as the TLS client will."""
    try:
        ssl.create_default_context(cafile=str(path))
    except FileNotFoundError:
        return "no such file"
    except IsADirectoryError:
        return "is a directory, not a PEM file"
    except OSError as exc:  # ssl.SSLError included
        if isinstance(exc, ssl.SSLError):
            return "not a PEM certificate (or CA bundle)"
        return f"cannot read: {exc.strerror or exc}"
    return None


class RemoteOPA:
    """An `Engine` that evaluates over HTTP(S) against an OPA Data API."""

    def __init__(
        self,
        url: str,
        *,
        ca_file: Path | None = None,
        timeout: float = 2.0,
        retries: int = 0,
        max_body: int = MAX_BODY,
        token: str | None = None,
    ) -> None:
        """`token`: sent as `Authorization: Bearer` with every request, as OPA's token
        authentication (and `smictl serve`'s Data API, which answers only workloads and the
        admin token's holder) asks for."""
        from opa_client import OpaClient

        parts = http_url(url)
        if parts is None:
            raise PolicyError.of(UNREACHABLE, f"not an http(s) URL: {url!r}")
        if parts.path not in ("", "/"):
            raise PolicyError.of(
                UNREACHABLE, f"give the server's root URL, without a path: {url!r}"
            )
        if ca_file is not None:
            if parts.scheme != "https":
                raise PolicyError.of(
                    CERTIFICATE, f"a CA file verifies https only; {url!r} is plain http"
                )
            problem = ca_file_problem(ca_file)
            if problem is not None:
                raise PolicyError.of(CERTIFICATE, f"{ca_file}: {problem}")
        if token and parts.scheme != "https":
            # Here, not only in `smictl admit`: PolicySet.load(remote_token=) is API too, and
            # a bearer token over plain http is a credential for anyone on the path.
            raise PolicyError.of(
                CERTIFICATE, f"a token is sent over https only; {url!r} is plain http"
            )
        # requests reads REQUESTS_CA_BUNDLE only for `verify=True`: a given CA file wins.
        self._verify: bool | str = str(ca_file) if ca_file is not None else True
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = str(url).rstrip("/")
        self.timeout = timeout
        self.max_body = max_body
        self._client = OpaClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            ssl=parts.scheme == "https",
            timeout=timeout,
            retries=retries,
        )

    def close(self) -> None:
        self._client.close_connection()

    def missing_packages(self, packages: Sequence[str]) -> list[str]:
        """The packages the server answers as undefined (`{}`): it does not hold them.

        Asked once when a policy set is loaded. OPA answers `{}` for `violation` of a package it
        lacks, which `evaluate` must read as "no violation" (a defined package's `violation`
        can be undefined too); left unchecked, a server without the policies would admit
        everything. A server that cannot answer now is not judged here: every evaluation
        against it fails closed anyway, so probing stops at the first such failure."""
        import requests

        missing: list[str] = []
        for package in packages:
            try:
                answer = self._post(package.replace(".", "/"), {})
            except (_BadAnswer, requests.RequestException, ValueError):
                break
            if isinstance(answer, dict) and "result" not in answer:
                missing.append(package)
        return missing

    def evaluate(
        self, entrypoints: Sequence[str], input_doc: Mapping[str, Any]
    ) -> list[EvalOutcome]:
        return [self._query(e, input_doc) for e in entrypoints]

    def _query(self, entrypoint: str, input_doc: Mapping[str, Any]) -> EvalOutcome:
        import requests

        try:
            answer = self._post(entrypoint, input_doc)
        except _BadAnswer as exc:
            return EvalOutcome(error=f"OPA at {self.url} {exc}")
        except requests.ConnectionError as exc:
            return EvalOutcome(error=f"OPA at {self.url} unreachable ({UNREACHABLE}): {_why(exc)}")
        except requests.Timeout:
            return EvalOutcome(error=f"OPA at {self.url} did not answer in time ({UNREACHABLE})")
        except (requests.RequestException, ValueError) as exc:
            return EvalOutcome(error=f"OPA at {self.url}: {type(exc).__name__}: {exc}")
        if not isinstance(answer, dict):
            return EvalOutcome(error=f"OPA at {self.url} answered a {type(answer).__name__}")
        return outcome_of_value(answer.get("result"))

    def _post(self, entrypoint: str, input_doc: Mapping[str, Any]) -> Any:
        """`query_rule`, bounded: no redirects, one deadline, at most `max_body` bytes."""
        url = f"{self._client.root_url}/data/{entrypoint}"
        deadline = time.monotonic() + self.timeout
        response = self._client._session.post(
            url,
            json={"input": dict(input_doc)},
            headers=self._headers,
            timeout=self.timeout,
            verify=self._verify,
            allow_redirects=False,
            stream=True,
        )
        with response:
            if 300 <= response.status_code < 400:
                where = response.headers.get("Location", "")
                raise _BadAnswer(
                    f"answered a redirect (HTTP {response.status_code}"
                    f"{' to ' + where[:200] if where else ''}); give the server's own URL"
                )
            body = bytearray()
            # read1: what has arrived (decoded), so the deadline is checked between any two
            # packets; iter_content would wait for a whole chunk at requests' per-read timeout
            while chunk := response.raw.read1(64 * 1024, decode_content=True):
                body += chunk
                if len(body) > self.max_body:
                    raise _BadAnswer(f"answered more than {self.max_body >> 20} MiB")
                if time.monotonic() > deadline:
                    raise _BadAnswer(f"did not answer in time ({UNREACHABLE})")
        if response.status_code >= 400:
            raise _BadAnswer(f"answered {_http_detail(response.status_code, bytes(body))}")
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise _BadAnswer("answered something that is not JSON") from None


class _BadAnswer(Exception):
    pass


def _why(exc: Exception) -> str:
    text = str(exc)
    markers = ("Connection refused", "Name or service not known", "timed out",
               "certificate verify failed")  # fmt: skip
    for marker in markers:
        if marker in text:
            return marker
    return type(exc).__name__


def _http_detail(status: int, body: bytes) -> str:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        doc = None
    message = doc.get("message") if isinstance(doc, dict) else None
    text = " ".join(str(message).split())[:300] if message else ""
    return f"HTTP {status}" + (f": {text}" if text else "")

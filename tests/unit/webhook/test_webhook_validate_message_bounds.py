"""`/validate`'s 422 `status.message`, which the API server relays to the user and the audit
log: one line per field path (user input in it escaped, never a line of its own), each line
bounded, and a bounded number of lines, the rest counted with where to see them all."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from smi.policy.admission import MAX_FIELD_LINES, MAX_FIELD_LINES_TOTAL, MAX_MESSAGE

Review = Callable[..., dict[str, Any]]
MORE = " more (run smictl validate for all)"


def refusal(client: FlaskClient, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    r = client.post("/validate", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    response = r.get_json()["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 422 and response["status"]["reason"] == "Invalid"
    return dict(response["status"]), len(r.get_data())


def route_group(path_regex: str) -> dict[str, Any]:
    return {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "routes", "namespace": "shop", "labels": {"owner": "x"}},
        "spec": {"matches": [{"name": "m", "pathRegex": path_regex, "methods": ["GET"]}]},
    }


def split(backends: list[dict[str, Any]], *, kind: str = "TrafficSplit") -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha2",
        "kind": kind,
        "metadata": {"name": "web", "namespace": "shop", "labels": {"owner": "x"}},
        "spec": {"service": "web", "backends": backends},
    }


@pytest.mark.parametrize("char", ["\n", "\r", "\x85", "\u2028"])
def test_a_regex_with_a_line_break_cannot_forge_a_line(
    client: FlaskClient, make_review: Review, char: str
) -> None:
    forged = f"/a({char}spec.matches[0].methods: forged (SMI0000)"
    status, _ = refusal(client, make_review(route_group(forged)))
    [line] = status["message"].splitlines()
    escaped = f"/a({repr(char)[1:-1]}spec.matches[0].methods: forged (SMI0000)"
    assert line == (
        f"spec.matches[0].pathRegex: pathRegex '{escaped}' is not RE2 syntax: "
        f"missing ): {escaped} (SMI2204)"
    )


def test_a_kind_with_a_newline_is_one_escaped_line(
    client: FlaskClient, make_review: Review
) -> None:
    # Not every reason quotes its input with repr: this one names the kind as sent.
    kind = "Split\nspec.backends[0].weight: forged (SMI0000)"
    status, _ = refusal(client, make_review(split([{"service": "a", "weight": 1}], kind=kind)))
    assert status["message"].splitlines() == [
        "kind: split.smi-spec.io/v1alpha2 has no kind Split\\nspec.backends[0].weight: forged"
        " (SMI0000) (it defines TrafficSplit) (SMI1007)"
    ]


def test_thousands_of_field_errors_are_capped_and_counted(
    client: FlaskClient, make_review: Review
) -> None:
    backends = [{"service": f"Bad_Name_{i}", "weight": -1} for i in range(2000)]
    status, size = refusal(client, make_review(split(backends)))
    lines = status["message"].splitlines()
    assert lines[:2] == [
        "spec.backends[0].service: Service name 'Bad_Name_0' is not a DNS-1123 label (lowercase"
        " letters, digits and '-', starting and ending alphanumeric, at most 63 characters)"
        " (SMI2006)",
        "spec.backends[0].weight: must be an integer >= 0 (got -1) (SMI2103)",
    ]
    assert len(lines) == MAX_FIELD_LINES + 1
    assert sum(map(len, lines[:-1])) <= MAX_FIELD_LINES_TOTAL
    more = int(lines[-1].removeprefix("... and ").removesuffix(MORE))
    assert len(lines) - 1 + more == 4000  # a name and a weight per backend, none lost
    assert size < 20_000  # was 513 KB for an 88 KB request


def test_long_lines_are_cut_and_fill_the_budget_before_the_count(
    client: FlaskClient, make_review: Review
) -> None:
    backends = [{"service": f"{'X' * 5000}{i}", "weight": 1} for i in range(30)]
    status, _ = refusal(client, make_review(split(backends)))
    lines = status["message"].splitlines()
    cut = [line for line in lines if "\u2026" in line]
    assert cut and all(len(line) == MAX_MESSAGE + len(" (SMI2006)") for line in cut)
    assert all(line.endswith("\u2026 (SMI2006)") for line in cut)
    assert sum(map(len, lines[:-1])) <= MAX_FIELD_LINES_TOTAL
    assert lines[-1] == f"... and {30 - (len(lines) - 1)}{MORE}"


def test_an_object_with_few_errors_keeps_every_line(
    client: FlaskClient, make_review: Review
) -> None:
    backends = [{"service": f"Bad_Name_{i}", "weight": 1} for i in range(MAX_FIELD_LINES)]
    status, _ = refusal(client, make_review(split(backends)))
    lines = status["message"].splitlines()
    assert len(lines) == MAX_FIELD_LINES and not any(MORE in line for line in lines)
    assert json.dumps(status).count("Bad_Name_") == MAX_FIELD_LINES

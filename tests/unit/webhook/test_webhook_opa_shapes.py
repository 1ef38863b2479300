"""The Data API answers as OPA does beyond its happy path: every error in OPA's shape
(`{"code": "...", "message": "..."}`, which OPA clients read), and the input evaluated as given.

Before, `POST /v1/data` and `/v1/data/` got Flask's `{"code": 404, "error": ...}`, and
`{"input": 5}` or `{"input": null}` were silently evaluated as `{}`. OPA evaluates any JSON
value as the input, and treats a missing or null input as no input, saying so in an
`api_usage_warning` (opa server/types: DataRequestV1.Input is `*any`, MsgInputKeyMissing)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from mesh_reader import reader_client

from smi.policy.policyset import PolicySet
from webhook import create_app, opa
from webhook.settings import Settings

# Says what input it was given: a number, a list, `null` and `{}` are all told apart.
ECHO = """# METADATA
# title: echo
# custom:
#   code: T0001
#   enforcement: deny
package t.echo

import rego.v1

violation contains {"msg": sprintf("input %v", [input])} if {
\tnot is_object(input)
}

violation contains {"msg": "empty object"} if {
\tinput == {}
}
"""
ECHO_PATH = "/v1/data/t/echo/violation"
NO_INPUT = {"code": "api_usage_warning", "message": "'input' key missing from the request"}


@pytest.fixture(scope="module")
def echo_policies(tmp_path_factory: pytest.TempPathFactory) -> PolicySet:
    root = tmp_path_factory.mktemp("policies")
    (root / "t" / "echo").mkdir(parents=True)
    (root / "t" / "echo" / "policy.rego").write_text(ECHO, encoding="utf-8")
    return PolicySet.load([root], include_shipped=False)


@pytest.fixture
def echo(settings: Settings, echo_policies: PolicySet) -> Iterator[FlaskClient]:
    app = create_app(settings, policies=echo_policies)
    yield reader_client(app)  # the Data API answers callers that prove who they are
    app.extensions["smictl"].store.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A workload's client: the Data API answers callers that prove who they are."""
    return reader_client(app)


def messages(answer: Any) -> list[str]:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [v["msg"] for v in answer.get_json()["result"]]


@pytest.mark.parametrize(
    ("value", "said"),
    [(5, "input 5"), ("text", "input text"), ([1, 2], "input [1, 2]"), (True, "input true")],
)
def test_an_input_that_is_not_an_object_is_evaluated_as_given(
    echo: FlaskClient, value: Any, said: str
) -> None:
    answer = echo.post(ECHO_PATH, json={"input": value})
    assert messages(answer) == [said]
    assert "warning" not in answer.get_json()


def test_an_object_input_is_unchanged(echo: FlaskClient) -> None:
    assert messages(echo.post(ECHO_PATH, json={"input": {"a": 1}})) == []
    assert messages(echo.post(ECHO_PATH, json={"input": {}})) == ["empty object"]


@pytest.mark.parametrize("body", [{}, {"input": None}, None], ids=["no-key", "null", "no-body"])
def test_no_input_is_evaluated_and_said_to_be_missing_as_opa_does(
    echo: FlaskClient, body: dict[str, Any] | None
) -> None:
    answer = echo.post(ECHO_PATH, json=body) if body is not None else echo.post(ECHO_PATH)
    assert answer.status_code == 200
    assert answer.get_json()["warning"] == NO_INPUT
    assert "result" in answer.get_json()


def test_an_undefined_document_without_input_keeps_the_warning(client: FlaskClient) -> None:
    answer = client.post("/v1/data/nothing/here")
    assert answer.status_code == 200 and answer.get_json() == {"warning": NO_INPUT}


def is_opa_error(answer: Any, status: int, code: str) -> str:
    assert answer.status_code == status
    body = answer.get_json()
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code
    message: str = body["message"]
    assert message and "\n" not in message
    return message


@pytest.mark.parametrize("path", ["/v1/data", "/v1/data/"])
def test_the_root_document_is_an_opa_shaped_refusal(client: FlaskClient, path: str) -> None:
    for answer in (client.post(path, json={"input": {}}), client.get(path)):
        message = is_opa_error(answer, 404, "resource_not_found")
        assert "/v1/data/<package path>" in message


def test_a_method_the_data_api_does_not_take_is_opa_shaped(client: FlaskClient) -> None:
    is_opa_error(client.put("/v1/data/smictl/authz", json={}), 405, "invalid_operation")
    is_opa_error(client.delete("/v1/data/"), 405, "invalid_operation")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/data/smictl/authz", {"GET", "POST"}),
        ("GET", "/validate", {"POST"}),
        ("PUT", "/mutate", {"POST"}),
        ("GET", "/convert", {"POST"}),
        ("POST", "/healthz", {"GET"}),
    ],
)
def test_a_405_says_which_methods_the_route_takes(
    client: FlaskClient, method: str, path: str, allowed: set[str]
) -> None:
    """RFC 9110 §15.5.6: a 405 MUST carry `Allow`; the JSON error page keeps it."""
    answer = client.open(path, method=method)
    assert answer.status_code == 405
    assert answer.content_type == "application/json"
    assert allowed <= {m.strip() for m in answer.headers["Allow"].split(",")}


def test_a_bad_body_is_opa_shaped(client: FlaskClient) -> None:
    is_opa_error(client.post("/v1/data/x", data=b"[1, 2]"), 400, "invalid_parameter")


def test_an_internal_error_is_opa_shaped(
    client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(opa, "evaluate", broken)
    message = is_opa_error(client.post("/v1/data/x", json={"input": {}}), 500, "internal_error")
    assert "boom" not in message  # the log has the details, the caller does not


def test_other_routes_keep_their_own_error_shape(client: FlaskClient) -> None:
    answer = client.get("/v1/datax")
    assert answer.status_code == 404 and answer.get_json()["code"] == 404
    assert client.put("/validate").get_json()["code"] == 405


def test_serves_only_the_data_api() -> None:
    assert opa.serves("/v1/data") and opa.serves("/v1/data/") and opa.serves("/v1/data/a/b")
    assert not opa.serves("/v1/datax") and not opa.serves("/validate")


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("5", ["input 5"]),
        ('"text"', ["input text"]),
        ("{}", ["empty object"]),
        ("null", ["empty object"]),
    ],
)
def test_a_get_evaluates_the_input_query_parameter_as_opa_does(
    echo: FlaskClient, value: str, said: list[str]
) -> None:
    """`GET ...?input=<JSON>` was answered "no violation" whatever the input said."""
    answer = echo.get(ECHO_PATH, query_string={"input": value})
    assert messages(answer) == said
    assert ("warning" in answer.get_json()) is (value == "null")


def test_a_get_with_input_that_is_not_json_is_a_400(echo: FlaskClient) -> None:
    answer = echo.get(ECHO_PATH, query_string={"input": "{not-json"})
    assert answer.status_code == 400
    doc = answer.get_json()
    assert doc["code"] == "invalid_parameter" and doc["message"].startswith("input query parameter")

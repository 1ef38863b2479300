"""`/v1/data/smictl/authz` reads `input.headers` as the proxy reads the request's header lines:
`{"X-Team": "blue "}` was `allowed: false` where the proxy (which drops the space) allows, and
names differing only by case kept the last one (`{"X-Team": "red", "x-team": "blue"}` allowed,
where the proxy, reading `x-team: red,blue`, denies). A list of strings is that many lines; any
other value is refused in OPA's error shape rather than answered for its `str()`."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from mesh_reader import reader_client

from proxy.exchange import Headers
from smi.compiler.ir.decide import authorize
from smi.compiler.ir.index import PolicyIndex
from smi.identity import Identity

AUTHZ = "/v1/data/smictl/authz"
ASK = {"source": "shop/web", "destination": "shop/api", "port": 8080, "method": "GET",
       "path": "/admin/users"}  # fmt: skip


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    store = app.extensions["smictl"].store
    store.apply(
        [
            {
                "apiVersion": "specs.smi-spec.io/v1alpha4",
                "kind": "HTTPRouteGroup",
                "metadata": {"name": "admin", "namespace": "shop"},
                "spec": {
                    "matches": [
                        {
                            "name": "teams",
                            "pathRegex": "/admin/.*",
                            "headers": {"X-Team": "blue|green"},
                        },
                        {"name": "order", "pathRegex": "/order", "headers": {"X-Order": "A,b"}},
                    ]
                },
            },
            {
                "apiVersion": "access.smi-spec.io/v1alpha3",
                "kind": "TrafficTarget",
                "metadata": {"name": "admins", "namespace": "shop"},
                "spec": {
                    "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
                    "rules": [
                        {"kind": "HTTPRouteGroup", "name": "admin", "matches": ["teams", "order"]}
                    ],
                    "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}],
                },
            },
        ]
    )
    return reader_client(app)


def proxy_allows(client: FlaskClient, raw: list[tuple[bytes, bytes]]) -> bool:
    """The proxy's verdict on the same request: its own header reading over the lines httptools
    hands it (names lower-cased, leading whitespace already gone)."""
    policy = client.application.extensions["smictl"].view().policy
    decision = authorize(
        PolicyIndex.build(policy),
        Identity.parse("shop/web").spiffe_id,
        Identity.parse("shop/api").spiffe_id,
        8080,
        "GET",
        "/admin/users",
        Headers(raw),
    )
    return decision.allowed


@pytest.mark.parametrize(
    ("headers", "raw", "allowed"),
    [
        ({"X-Team": "blue"}, [(b"x-team", b"blue")], True),
        ({"X-Team": "blue "}, [(b"x-team", b"blue ")], True),
        ({"X-Team": " \tblue\t"}, [(b"x-team", b"blue\t")], True),
        ({"X-Team": ["red", "blue"]}, [(b"x-team", b"red"), (b"x-team", b"blue")], False),
        ({"X-Team": ["green "]}, [(b"x-team", b"green ")], True),
        # one header in two spellings: both lines, whichever order the keys were written in
        ({"X-Team": "red", "x-team": "blue"}, [(b"x-team", b"red"), (b"x-team", b"blue")], False),
        ({"x-team": "blue", "X-Team": "red"}, [(b"x-team", b"red"), (b"x-team", b"blue")], False),
        ({"X-Team": "blue", "x-team": "blue"}, [(b"x-team", b"blue"), (b"x-team", b"blue")], False),
        ({"X-Team": []}, [], False),
        ({}, [], False),
    ],
)
def test_headers_are_read_as_the_proxy_reads_them(
    client: FlaskClient, headers: dict[str, Any], raw: list[tuple[bytes, bytes]], allowed: bool
) -> None:
    r = client.post(AUTHZ, json={"input": {**ASK, "headers": headers}})
    assert r.status_code == 200
    assert r.get_json()["result"]["allowed"] is allowed
    assert proxy_allows(client, raw) is allowed


@pytest.mark.parametrize(
    "headers", [{"x-order": "b", "X-Order": "A"}, {"X-Order": "A", "x-order": "b"}]
)
def test_spellings_join_in_the_code_point_order_of_the_names(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    """A JSON object's keys have no order, so the same object serialised with its keys in
    another order gets the same answer: `X-Order` sorts before `x-order`, the value is `A,b`."""
    ask = {**ASK, "path": "/order", "headers": headers}
    r = client.post(AUTHZ, json={"input": ask})
    assert r.get_json()["result"]["allowed"] is True
    assert r.get_json()["result"]["detail"] == "shop/HTTPRouteGroup/admin#order"


EXPECTED = "expected a string or a list of strings"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Team": 5}, f"input.headers.X-Team: {EXPECTED}, not a number"),
        ({"X-Team": True}, f"input.headers.X-Team: {EXPECTED}, not a boolean"),
        ({"X-Team": None}, f"input.headers.X-Team: {EXPECTED}, not null"),
        ({"X-Team": {"v": "blue"}}, f"input.headers.X-Team: {EXPECTED}, not an object"),
        ({"X-Team": ["blue", None]}, f"input.headers.X-Team: {EXPECTED}, not a list holding null"),
        ({"X-Team": [["blue"]]}, f"input.headers.X-Team: {EXPECTED}, not a list holding a list"),
        ({"X\nTeam": 1}, f"input.headers.X\\nTeam: {EXPECTED}, not a number"),
        (["X-Team", "blue"], "input.headers: expected an object of header names to values"),
        ("X-Team: blue", "input.headers: expected an object of header names to values"),
    ],
)
def test_other_values_are_refused_in_opa_shape(
    client: FlaskClient, headers: Any, message: str
) -> None:
    r = client.post(AUTHZ, json={"input": {**ASK, "headers": headers}})
    assert r.status_code == 400
    assert r.get_json() == {"code": "invalid_parameter", "message": message}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("path", 5, "input.path: expected a string, not a number"),
        ("path", {}, "input.path: expected a string, not an object"),
        ("path", ["/admin/users"], "input.path: expected a string, not a list"),
        ("method", ["GET"], "input.method: expected a string, not a list"),
        ("method", {"GET": 1}, "input.method: expected a string, not an object"),
        ("method", 5, "input.method: expected a string, not a number"),
        ("port", True, "input.port: expected a port number from 0 to 65535, not true"),
        ("port", 8080.9, "input.port: expected a port number from 0 to 65535, not 8080.9"),
        ("port", 70000, "input.port: expected a port number from 0 to 65535, not 70000"),
        ("port", -1, "input.port: expected a port number from 0 to 65535, not -1"),
        ("port", "http", 'input.port: expected a port number from 0 to 65535, not "http"'),
        ("port", [8080], "input.port: expected a port number from 0 to 65535, not a list"),
    ],
)
def test_a_method_path_or_port_of_another_type_is_refused(
    client: FlaskClient, field: str, value: Any, message: str
) -> None:
    """Was a 500 with a traceback in the log (a path of 5, a method list), or an answer about
    another request (`true` read as port 1, `8080.9` as 8080, the method 5 as "5")."""
    r = client.post(AUTHZ, json={"input": {**ASK, "headers": {"X-Team": "blue"}, field: value}})
    assert r.status_code == 400
    assert r.get_json() == {"code": "invalid_parameter", "message": message}


@pytest.mark.parametrize("port", ["8080", 8080.0])
def test_a_port_is_a_number_or_its_digits(client: FlaskClient, port: Any) -> None:
    def ask(port: Any) -> Any:
        r = client.post(AUTHZ, json={"input": {**ASK, "headers": {"X-Team": "blue"}, "port": port}})
        assert r.status_code == 200
        return r.get_json()["result"]

    assert ask(port) == ask(8080)
    assert ask(port)["allowed"] is True


@pytest.mark.parametrize(
    ("below", "expected"),
    [
        ("allowed", {"result": True}),
        ("mode", {"result": "deny"}),
        ("rules/0", {"result": "shop/TrafficTarget/admins"}),
        ("nothing", {}),
        ("allowed/deeper", {}),
    ],
)
def test_a_field_of_the_answer_is_a_document_of_its_own(
    client: FlaskClient, below: str, expected: dict[str, Any]
) -> None:
    """`/v1/data/smictl/authz/allowed` answered `{}` (undefined), where OPA answers the field:
    an OPA client asking for it read a deny."""
    ask = {"input": {**ASK, "headers": {"X-Team": "blue"}}}
    r = client.post(f"{AUTHZ}/{below}", json=ask)
    assert r.status_code == 200
    assert r.get_json() == expected


def test_pretty_indents_the_answer(client: FlaskClient) -> None:
    ask = {"input": {**ASK, "headers": {"X-Team": "blue"}}}
    plain = client.post(f"{AUTHZ}/allowed", json=ask)
    for query in ("pretty", "pretty=true", "pretty=TRUE"):
        r = client.post(f"{AUTHZ}/allowed?{query}", json=ask)
        assert r.get_data(as_text=True) == '{\n  "result": true\n}\n'
        assert r.content_type == "application/json"
    assert client.post(f"{AUTHZ}/allowed?pretty=false", json=ask).get_data() == plain.get_data()

"""The local store API answers only the holder of the admin token.

Before, `POST /apis/smictl.io/v1/apply` and `/delete` took anyone who could open a connection:
a TrafficTarget granting `shop/evil` access to `shop/db` was one unauthenticated request, and
it left no decision line. Now every request without `Authorization: Bearer <admin token>` is a
401 that changes nothing; each write and each refusal is one `smictl.decision` line (never
with the token) and a count in `/metrics`. `serve` and `certs init` make the token; `serve`
refuses one it cannot read, in one line, before gunicorn starts.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import pytest
from flask import Flask
from flask.testing import FlaskClient
from local_admin import ADMIN_TOKEN, admin_client, with_admin_token

from smi.cli import main
from smi.errors import SMIError
from smi.policy.policyset import PolicySet
from webhook import create_app
from webhook.client import ADMIN_TOKEN_FILE, AdminToken, Reply, read_admin_token, refused
from webhook.settings import Settings

APPLY = "/apis/smictl.io/v1/apply"
DELETE = "/apis/smictl.io/v1/delete"
OBJECTS = "/apis/smictl.io/v1/objects"


def grant(source: str) -> dict[str, Any]:
    """The audit's attack: a TrafficTarget letting `source` reach shop/db."""
    return {
        "apiVersion": "access.smi-spec.io/v1alpha3",
        "kind": "TrafficTarget",
        "metadata": {"name": "web-to-db", "namespace": "shop"},
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": "db", "namespace": "shop"},
            "sources": [{"kind": "ServiceAccount", "name": source, "namespace": "shop"}],
            "rules": [{"kind": "TCPRoute", "name": "db-port"}],
        },
    }


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return with_admin_token(settings, tmp_path)


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return admin_client(app)


@pytest.fixture
def stored(admin: FlaskClient) -> int:
    """The store holds `web-to-db` (sources: web); its revision."""
    r = admin.post(APPLY, json={"items": [grant("web")]})
    assert r.status_code == 200, r.get_json()
    revision: int = r.get_json()["revision"]
    return revision


def revision(app: Flask) -> int:
    value: int = app.extensions["smictl"].store.revision()
    return value


def sources(admin: FlaskClient) -> list[str]:
    [item] = admin.get(OBJECTS, query_string={"kind": "TrafficTarget"}).get_json()["items"]
    return [s["name"] for s in item["spec"]["sources"]]


HOSTILE_HEADERS = {
    "none": {},
    "wrong token": {"Authorization": "Bearer " + "x" * 43},
    "token of another control plane": {"Authorization": "Bearer " + ADMIN_TOKEN[::-1]},
    "the token with one more character": {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    "the token as Basic": {"Authorization": f"Basic {ADMIN_TOKEN}"},
    "Bearer and nothing": {"Authorization": "Bearer "},
    "not ASCII": {"Authorization": "Bearer \u00e9\u00e9\u00e9"},
}


@pytest.mark.parametrize("headers", HOSTILE_HEADERS.values(), ids=HOSTILE_HEADERS.keys())
def test_without_the_admin_token_nothing_is_applied_deleted_or_listed(
    app: Flask, admin: FlaskClient, stored: int, headers: dict[str, str]
) -> None:
    anyone = app.test_client()
    attempts = [
        anyone.post(APPLY, json={"items": [grant("evil")]}, headers=headers),
        anyone.post(
            DELETE,
            json={"items": [{"kind": "TrafficTarget", "name": "web-to-db", "namespace": "shop"}]},
            headers=headers,
        ),
        anyone.get(OBJECTS, headers=headers),
    ]
    for r in attempts:
        assert r.status_code == 401, r.get_data(as_text=True)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        error = r.get_json()["error"]
        assert error and "\n" not in error and ADMIN_TOKEN not in error
        assert "items" not in r.get_json()  # the list is not leaked either
    assert revision(app) == stored  # nothing changed
    assert sources(admin) == ["web"]


def test_with_the_admin_token_the_api_works(app: Flask, admin: FlaskClient, stored: int) -> None:
    r = admin.post(APPLY, json={"items": [grant("api")]})
    assert r.status_code == 200 and r.get_json()["revision"] == stored + 1
    assert sources(admin) == ["api"]
    gone = admin.post(
        DELETE,
        json={"items": [{"kind": "TrafficTarget", "name": "web-to-db", "namespace": "shop"}]},
    )
    assert gone.status_code == 200
    assert admin.get(OBJECTS).get_json()["items"] == []


def test_without_a_configured_token_the_api_refuses_everyone(
    settings: Settings, policy_set: PolicySet
) -> None:
    app = create_app(replace(settings, admin_token_file=None), policies=policy_set)
    try:
        r = admin_client(app).post(APPLY, json={"items": [grant("evil")]})
        assert r.status_code == 401 and "no admin token" in r.get_json()["error"]
        assert revision(app) == 0
    finally:
        app.extensions["smictl"].store.close()


def test_an_unreadable_token_file_stops_the_app_with_one_line(
    settings: Settings, policy_set: PolicySet, tmp_path: Path
) -> None:
    short = tmp_path / "short.token"
    short.write_text("abc\n")
    for path, reason in ((tmp_path / "missing.token", "No such file"), (short, "shorter than")):
        with pytest.raises(SMIError) as caught:
            create_app(replace(settings, admin_token_file=path), policies=policy_set)
        [d] = caught.value.diagnostics
        assert d.code == "SMI7009" and d.path == "--admin-token-file"
        assert str(path) in d.message and reason in d.message


def decisions(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.fields for r in caplog.records if r.name == "smictl.decision"]  # type: ignore[attr-defined]


def test_every_write_and_every_refusal_is_one_decision_line_without_the_token(
    app: Flask, admin: FlaskClient, stored: int, caplog: pytest.LogCaptureFixture
) -> None:
    anyone = app.test_client()
    with caplog.at_level(logging.INFO, logger="smictl.decision"):
        admin.post(APPLY, json={"items": [grant("api")]})
        anyone.post(APPLY, json={"items": [grant("evil")]}, headers={"Authorization": "Bearer no"})
        admin.post(APPLY, json={"items": [{**grant("x"), "spec": {"sources": []}}]})  # invalid
        admin.post(DELETE, json={"items": [{"kind": "TrafficTarget", "name": "web-to-db",
                                            "namespace": "shop"}], "dryRun": True})  # fmt: skip
        admin.get(OBJECTS)  # a read by the admin: the access log's business only
    lines = decisions(caplog)
    assert [(d["operation"], d["user"], d["decision"], d["status"]) for d in lines] == [
        ("apply", "local-admin", "allowed", 200),
        ("apply", "anonymous", "unauthenticated", 401),
        ("apply", "local-admin", "refused", 422),
        ("delete", "local-admin", "allowed", 200),
    ]
    applied, anonymous, invalid, deleted = lines
    [target] = applied["objects"]
    assert "TrafficTarget" in target and "shop" in target and "web-to-db" in target
    assert applied["revision"] == stored + 1
    assert applied["results"] == [{"object": target, "action": "configured"}]
    assert anonymous["objects"] == []  # its body is never read
    assert "not this control plane's admin token" in anonymous["messages"][0]
    assert invalid["messages"][0] and "revision" not in invalid
    assert deleted["dryRun"] is True and deleted["revision"] == stored + 1
    assert all(d["remote"] == "127.0.0.1" for d in lines)
    assert ADMIN_TOKEN not in caplog.text
    assert ADMIN_TOKEN not in json.dumps(lines)


def test_refusals_are_counted_in_metrics(app: Flask, admin: FlaskClient) -> None:
    anyone = app.test_client()
    for _ in range(3):
        anyone.post(APPLY, json={"items": [grant("evil")]})
    anyone.get(OBJECTS)
    admin.post(APPLY, json={"items": [grant("web")]})
    text = anyone.get("/metrics").get_data(as_text=True)
    assert 'smictl_local_api_requests_total{operation="apply",result="unauthenticated"} 3.0' in text
    assert 'smictl_local_api_requests_total{operation="list",result="unauthenticated"} 1.0' in text
    assert 'smictl_local_api_requests_total{operation="apply",result="allowed"} 1.0' in text


# --- where the token comes from: `serve` and `certs init` ---------------------------------------


class Started(BaseException):
    """`os.execve` was called: serve passed its checks (a BaseException, past smictl's net)."""


@pytest.fixture
def serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Any]:
    def execve(path: str, argv: list[str], env: dict[str, str]) -> NoReturn:
        raise Started(env)

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for name in [n for n in os.environ if n.startswith("SMI_WEBHOOK_")]:
        monkeypatch.delenv(name)

    def run(*argv: str) -> tuple[int | None, list[str], dict[str, str] | None]:
        code: int | None = None
        env: dict[str, str] | None = None
        try:
            code = main(["serve", "--bind", "127.0.0.1:0", "--no-shipped-policies", *argv])
        except Started as started:
            env = started.args[0]
        return code, capsys.readouterr().err.strip().splitlines(), env

    yield run


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


def test_serve_makes_a_token_once_and_keeps_it(serve: Any, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    code, err, env = serve("--certs-dir", str(certs))
    assert code is None and env is not None, err
    token_file = certs / ADMIN_TOKEN_FILE
    assert env["SMI_WEBHOOK_ADMIN_TOKEN_FILE"] == str(token_file)
    token = read_admin_token(token_file)
    assert len(token) == 43 and private(token_file)  # 32 random bytes, URL-safe
    assert serve("--certs-dir", str(certs))[2] is not None
    assert read_admin_token(token_file) == token  # a restart keeps it


def test_a_state_directory_from_before_gets_a_token_on_next_start(
    serve: Any, tmp_path: Path
) -> None:
    state_certs = tmp_path / "state" / "smictl" / "certs"
    assert main(["certs", "init", "--dir", str(state_certs)]) == 0
    (state_certs / ADMIN_TOKEN_FILE).unlink()  # as a certs directory made before tokens
    code, err, env = serve()  # the default certs directory
    assert code is None and env is not None, err
    assert private(state_certs / ADMIN_TOKEN_FILE)
    assert env["SMI_WEBHOOK_ADMIN_TOKEN_FILE"] == str(state_certs / ADMIN_TOKEN_FILE)


def test_an_explicit_token_file_is_used_as_it_is(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "mine.token"
    mine.write_text(ADMIN_TOKEN)
    code, err, env = serve("--certs-dir", str(tmp_path / "certs"), "--admin-token-file", str(mine))
    assert code is None and env is not None, err
    assert env["SMI_WEBHOOK_ADMIN_TOKEN_FILE"] == str(mine)
    assert not (tmp_path / "certs" / ADMIN_TOKEN_FILE).exists()  # none made beside it
    monkeypatch.setenv("SMI_WEBHOOK_ADMIN_TOKEN_FILE", str(mine))
    env = serve("--certs-dir", str(tmp_path / "certs"))[2]
    assert env is not None and env["SMI_WEBHOOK_ADMIN_TOKEN_FILE"] == str(mine)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file"),
        ("", "not an admin token: the file is empty"),
        ("short\n", "not an admin token: shorter than 32 characters"),
        ("two words " + "x" * 40, "not an admin token: a token is one word"),
        ("\u00e9" * 40, "not an admin token"),
    ],
)
def test_an_unusable_token_file_is_one_line_before_gunicorn(
    serve: Any, tmp_path: Path, content: str | None, reason: str
) -> None:
    path = tmp_path / "admin.token"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, err, env = serve("--certs-dir", str(tmp_path / "c"), "--admin-token-file", str(path))
    assert (code, env) == (1, None)
    assert len(err) == 1, err
    assert err[0].startswith(f"--admin-token-file {path}: {reason}") and err[0].endswith(
        "(SMI7009)"
    )


def test_a_directory_as_token_file_is_one_line(serve: Any, tmp_path: Path) -> None:
    code, err, env = serve("--admin-token-file", str(tmp_path))
    assert (code, env) == (1, None)
    assert len(err) == 1 and err[0].startswith(f"--admin-token-file {tmp_path}: cannot read")


def test_kubernetes_mode_needs_no_token(serve: Any, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    certs = tmp_path / "certs"
    code, err, env = serve("--kubeconfig", str(kubeconfig), "--certs-dir", str(certs))
    assert code is None and env is not None, err
    assert "SMI_WEBHOOK_ADMIN_TOKEN_FILE" not in env
    assert not (certs / ADMIN_TOKEN_FILE).exists()


def test_certs_init_writes_a_private_token_and_force_replaces_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    certs = tmp_path / "certs"
    assert main(["certs", "init", "--dir", str(certs)]) == 0
    assert str(certs / ADMIN_TOKEN_FILE) in capsys.readouterr().out
    first = read_admin_token(certs / ADMIN_TOKEN_FILE)
    assert private(certs / ADMIN_TOKEN_FILE) and len(first) == 43
    assert main(["certs", "init", "--dir", str(certs), "--force"]) == 0
    assert read_admin_token(certs / ADMIN_TOKEN_FILE) != first  # a leaked directory replaced
    assert private(certs / ADMIN_TOKEN_FILE)
    assert not [p.name for p in certs.iterdir() if p.name.endswith(".tmp")]


# --- where the client finds it ------------------------------------------------------------------


def test_the_client_finds_the_token_beside_the_ca_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMICTL_ADMIN_TOKEN_FILE", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ADMIN_TOKEN_FILE).write_text(ADMIN_TOKEN + "\n")
    found = AdminToken.find(token_file=None, ca_file=tmp_path / "a" / "ca.crt")
    assert found.value == ADMIN_TOKEN
    missing = AdminToken.find(token_file=None, ca_file=tmp_path / "b" / "ca.crt")
    assert missing.value is None and missing.path == tmp_path / "b" / ADMIN_TOKEN_FILE
    assert missing.problem == "no such file"
    default = AdminToken.find(token_file=None, ca_file=None)  # the state directory's certs
    assert default.path == tmp_path / "state" / "smictl" / "certs" / ADMIN_TOKEN_FILE
    other = tmp_path / "other.token"
    other.write_text("y" * 40)
    monkeypatch.setenv("SMICTL_ADMIN_TOKEN_FILE", str(other))
    assert AdminToken.find(token_file=None, ca_file=tmp_path / "a" / "ca.crt").value == "y" * 40


def test_a_401_says_where_the_token_was_expected_in_one_line(tmp_path: Path) -> None:
    missing = AdminToken(tmp_path / ADMIN_TOKEN_FILE, "beside the CA file", problem="no such file")
    body = {"error": "missing `Authorization: Bearer <admin token>`", "code": 401}
    [d] = refused(Reply(401, body, auth_hint=missing.hint(scheme="https"))).diagnostics
    assert d.code == "SMI7002" and "\n" not in d.format()
    assert f"{tmp_path / ADMIN_TOKEN_FILE} (beside the CA file): no such file" in d.message
    assert "SMICTL_ADMIN_TOKEN_FILE" in d.message and "--ca" in d.message
    wrong = AdminToken(tmp_path / ADMIN_TOKEN_FILE, "beside the CA file", value=ADMIN_TOKEN)
    [d] = refused(Reply(401, body, auth_hint=wrong.hint(scheme="https"))).diagnostics
    assert "is not this control plane's" in d.message and ADMIN_TOKEN not in d.message

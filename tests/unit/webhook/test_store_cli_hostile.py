"""`smictl apply/get/delete` and the store API against hostile input and hostile servers.

The API half posts to the Flask app (a real SQLite store): every object the store cannot key
or show is refused with its index, nothing half-applied, and what `get` prints applies back as
`unchanged` — or as a 409 when someone changed the object since it was read. The client half
points the CLI at small local HTTP servers that are not smictl (an HTML page, a redirect, an
endless or trickling body, JSON of the wrong shape): one line, exit 1, bounded in time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from local_admin import admin_client, with_admin_token

from smi.cli import main
from webhook.settings import Settings

APPLY = "/apis/smictl.io/v1/apply"
DELETE = "/apis/smictl.io/v1/delete"
OBJECTS = "/apis/smictl.io/v1/objects"

pytestmark = pytest.mark.timeout(60)


# The store API answers only the admin token's holder; these tests hold it.
@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return with_admin_token(settings, tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return admin_client(app)


def split(name: str, weights: tuple[int, int] = (90, 10)) -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {"name": name, "namespace": "shop", "labels": {"owner": "shop-team"}},
        "spec": {
            "service": name,
            "backends": [
                {"service": f"{name}-v1", "weight": weights[0]},
                {"service": f"{name}-v2", "weight": weights[1]},
            ],
        },
    }


def service(name: str, namespace: Any = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"port": 8080}]},
    }


def listed(client: FlaskClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(OBJECTS).get_json()["items"]
    return items


# --- the store API ------------------------------------------------------------------------------


def test_reapplying_what_get_printed_is_unchanged(client: FlaskClient) -> None:
    assert client.post(APPLY, json={"items": [split("web")]}).status_code == 200
    [read] = listed(client)
    assert read["metadata"]["resourceVersion"] == "1"
    r = client.post(APPLY, json={"items": [read]})
    assert r.status_code == 200, r.get_json()
    assert [x["action"] for x in r.get_json()["results"]] == ["unchanged"]
    assert r.get_json()["revision"] == 1  # no phantom revision for nothing
    [again] = listed(client)
    assert again == read


def test_a_stale_resource_version_is_a_conflict_and_nothing_changes(client: FlaskClient) -> None:
    client.post(APPLY, json={"items": [split("web")]})
    [read] = listed(client)  # alice reads at resourceVersion 1
    client.post(APPLY, json={"items": [split("web", (80, 20))]})  # bob applies: revision 2
    alice = {**read, "spec": {**read["spec"], "service": "web"}}
    alice["spec"]["backends"] = [
        {"service": "web-v1", "weight": 85},
        {"service": "web-v2", "weight": 15},
    ]
    r = client.post(APPLY, json={"items": [split("api"), alice]})
    assert r.status_code == 409, r.get_json()
    [denial] = r.get_json()["denials"]
    assert denial["index"] == 1
    assert denial["diagnostics"][0]["path"] == "metadata.resourceVersion"
    assert "now at 2" in denial["diagnostics"][0]["message"]
    names = {(i["metadata"]["name"], i["spec"]["backends"][0]["weight"]) for i in listed(client)}
    assert names == {("web", 80)}  # bob's update kept, and "api" not half-applied


def test_a_current_resource_version_applies(client: FlaskClient) -> None:
    client.post(APPLY, json={"items": [split("web")]})
    [read] = listed(client)
    read["spec"]["backends"][0]["weight"] = 85
    r = client.post(APPLY, json={"items": [read]})
    assert r.status_code == 200, r.get_json()
    assert [x["action"] for x in r.get_json()["results"]] == ["configured"]
    [stored] = listed(client)
    assert stored["metadata"]["resourceVersion"] == "2"


def test_objects_the_store_cannot_key_or_show_are_refused_with_their_index(
    client: FlaskClient,
) -> None:
    widget = {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}}
    items = [service("ok"), service("w", ["x"]), service("Bad Name"), widget, service("n", 5)]
    r = client.post(APPLY, json={"items": items})
    assert r.status_code == 422, r.get_json()
    by_index = {d["index"]: d["diagnostics"][0]["path"] for d in r.get_json()["denials"]}
    assert by_index == {
        1: "metadata.namespace",
        2: "metadata.name",
        3: "kind",
        4: "metadata.namespace",
    }
    assert listed(client) == []  # "ok" was fine, and nothing was written


def test_an_object_twice_in_one_apply_is_refused_at_its_index(client: FlaskClient) -> None:
    other = service("a")
    other["spec"]["ports"] = [{"port": 9090}]
    r = client.post(APPLY, json={"items": [service("a"), service("b"), other]})
    assert r.status_code == 422
    [denial] = r.get_json()["denials"]
    assert denial["index"] == 2 and denial["diagnostics"][0]["code"] == "SMI2007"
    assert "different content" in denial["diagnostics"][0]["message"]
    assert listed(client) == []


def test_identical_copies_in_one_apply_are_one_object(client: FlaskClient) -> None:
    """`-f dir` holding one manifest twice: validate warns (SMI3008), apply stores it once."""
    r = client.post(APPLY, json={"items": [service("a"), service("b"), service("a")]})
    assert r.status_code == 200, r.get_json()
    assert sorted(i["metadata"]["name"] for i in listed(client)) == ["a", "b"]


@pytest.mark.parametrize(("route", "flag"), [(APPLY, "dryRun"), (DELETE, "ignoreNotFound")])
def test_flags_must_be_booleans(client: FlaskClient, route: str, flag: str) -> None:
    items = [service("a")] if route == APPLY else [{"kind": "Service", "name": "zz"}]
    r = client.post(route, json={"items": items, flag: "false"})
    assert r.status_code == 400 and flag in r.get_json()["error"]
    assert listed(client) == []


def test_a_missing_object_in_a_delete_is_named_by_its_index(client: FlaskClient) -> None:
    client.post(APPLY, json={"items": [service("a")]})
    refs = [{"kind": "Service", "name": "a", "namespace": "shop"}, {"kind": "Service", "name": "b"}]
    r = client.post(DELETE, json={"items": refs})
    assert r.status_code == 404 and "not found" in r.get_json()["error"]
    [denial] = r.get_json()["denials"]
    assert denial["index"] == 1 and denial["diagnostics"][0]["code"] == "SMI7004"
    assert [i["metadata"]["name"] for i in listed(client)] == ["a"]  # all or nothing


# --- the client against servers that are not smictl ---------------------------------------------

Handler = Callable[[BaseHTTPRequestHandler], None]


@pytest.fixture
def fake() -> Iterator[Callable[[Handler], str]]:
    """Start a local HTTP server answering with the given handler; its URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Handler) -> str:
        class H(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                answer(self)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer(self)

        server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def send(h: BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
    h.send_response(status)
    for name, value in {"Content-Length": str(len(body)), **headers}.items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(body)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "svc.yaml"
    path.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, err.strip().splitlines(), out


def test_an_html_page_that_answers_200_is_not_an_apply(
    fake: Callable[[Handler], str], manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = fake(
        lambda h: send(
            h, 200, b"<html><body>Welcome</body></html>", **{"Content-Type": "text/html"}
        )
    )
    code, err, out = run(capsys, "apply", "-f", str(manifest), "--server", url)
    assert code == 1 and out == ""  # before: "revision None", exit 0
    assert len(err) == 1 and "did not answer as a smictl control plane" in err[0]
    code, err, out = run(capsys, "get", "services", "--server", url)
    assert code == 1 and "No resources found" not in out and "(SMI7001)" in err[0]


@pytest.mark.parametrize(
    "body",
    [b"[1, 2, 3]", b'{"items": [1, "x", null]}', b'{"results": [{"x": 1}], "revision": 3}'],
)
def test_json_of_the_wrong_shape_is_one_line_not_a_crash(
    fake: Callable[[Handler], str],
    manifest: Path,
    capsys: pytest.CaptureFixture[str],
    body: bytes,
) -> None:
    url = fake(lambda h: send(h, 200, body))
    for argv in (["apply", "-f", str(manifest)], ["get", "services"]):
        code, err, _ = run(capsys, *argv, "--server", url)
        assert code == 1, err  # before: exit 70, "internal error: AttributeError"
        assert len(err) == 1 and "(SMI7001)" in err[0]


def test_garbled_denials_are_one_line(
    fake: Callable[[Handler], str], manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = fake(lambda h: send(h, 403, b'{"denials": [1, {"diagnostics": "zz"}], "error": "no"}'))
    code, err, _ = run(capsys, "apply", "-f", str(manifest), "--server", url)
    assert code == 1 and len(err) == 1 and "refused the request: no" in err[0]


def test_a_redirect_names_where_it_leads(
    fake: Callable[[Handler], str], manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = fake(lambda h: send(h, 302, b"", Location="https://sso.example/login"))
    code, err, _ = run(capsys, "apply", "-f", str(manifest), "--server", url)
    assert code == 1 and len(err) == 1
    assert "redirect to https://sso.example/login" in err[0] and "(SMI7001)" in err[0]


def trickle(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.end_headers()  # no length: the body ends when the connection does
    for _ in range(30):
        try:
            h.wfile.write(b" ")
            h.wfile.flush()
        except OSError:
            return
        time.sleep(0.5)


def test_a_trickling_server_is_given_up_on_at_the_deadline(
    fake: Callable[[Handler], str], manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = fake(trickle)
    started = time.monotonic()
    code, err, _ = run(
        capsys, "apply", "-f", str(manifest), "--server", url, "--request-timeout", "1.5"
    )
    assert time.monotonic() - started < 6  # before: every byte reset the 30 s socket timeout
    assert code == 1 and len(err) == 1
    assert "no complete answer within 1.5s" in err[0]
    assert "applied entirely or not at all" in err[0]  # a write may have landed: say so


def endless(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.end_headers()
    block = b'"' + b"x" * 65534 + b'",'
    try:
        h.wfile.write(b'{"items": [')
        for _ in range(2000):  # ~128 MiB, more than the client takes
            h.wfile.write(block)
    except OSError:
        pass


def test_an_endless_body_is_not_read_into_memory(
    fake: Callable[[Handler], str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = fake(endless)
    code, err, _ = run(capsys, "get", "services", "--server", url)
    assert code == 1 and len(err) == 1 and "larger than 64 MiB" in err[0]


def test_a_claimed_huge_length_is_refused_before_reading(
    fake: Callable[[Handler], str], capsys: pytest.CaptureFixture[str]
) -> None:
    def claim(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(10**12))
        h.end_headers()

    code, err, _ = run(capsys, "get", "services", "--server", fake(claim))
    assert code == 1 and len(err) == 1 and "too large" in err[0]


def test_a_connection_lost_after_a_write_was_sent_says_it_may_have_landed(
    fake: Callable[[Handler], str], manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def hang_up(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True  # read the request, answer nothing

    code, err, _ = run(capsys, "apply", "-f", str(manifest), "--server", fake(hang_up))
    assert code == 1 and len(err) == 1
    assert "after sending the request" in err[0] and "check with `smictl get`" in err[0]


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        ("https://127.0.0.1:99999", "Port out of range"),
        ("https://[::1", "Invalid IPv6 URL"),
        ("garbage", "not an https URL"),
    ],
)
def test_a_garbage_server_url_is_one_line(
    manifest: Path, capsys: pytest.CaptureFixture[str], server: str, reason: str
) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["apply", "-f", str(manifest), "--server", server])
    code, err = usage.value.code, capsys.readouterr().err.strip().splitlines()
    # (exit 70 once, "internal error: ValueError"; then 1; a flag that cannot work is a usage
    # error, 2, as for every smictl command)
    assert code == 2, err
    assert reason in err[-1] and err[-1].endswith("(SMI7001)")
    assert err[-1].startswith("smictl apply: error: argument --server: ")


def test_a_path_in_the_server_url_is_kept(
    fake: Callable[[Handler], str], capsys: pytest.CaptureFixture[str]
) -> None:
    def behind_a_prefix(h: BaseHTTPRequestHandler) -> None:
        ok = h.path.startswith("/smictl/apis/smictl.io/v1/objects")
        send(h, 200 if ok else 404, json.dumps({"items": []} if ok else {"error": h.path}).encode())

    code, err, out = run(capsys, "get", "services", "--server", fake(behind_a_prefix) + "/smictl/")
    assert code == 0, err  # before: the prefix was dropped and the request went to /apis/...
    assert out.strip() == "No resources found in default namespace."


def test_delete_needs_one_kind(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:  # a usage error, as argparse reports one
        main(["delete", "all", "web", "--server", "https://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(err) == 1 and "not 'all'" in err[0]


@pytest.mark.parametrize("text", ["", "# nothing\n---\n", "kind: ConfigMap\napiVersion: v1\n"])
def test_apply_of_no_objects_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text(text)
    # Port 9 (discard): nothing is listening, so a request would fail with another message.
    code, err, _ = run(capsys, "apply", "-f", str(empty), "--server", "https://127.0.0.1:9")
    assert code == 1 and err[-1].startswith(f"{empty}: ") and err[-1].endswith("(SMI1012)")
    assert "; nothing applied" in err[-1]


def test_a_delete_missing_several_objects_says_how_many(client: FlaskClient) -> None:
    """The summary named the first missing object alone (`smictl: default/Service/b not found;
    nothing was changed`), though every one was missing."""
    refs = [{"kind": "Service", "name": "b"}, {"kind": "Service", "name": "c"}]
    r = client.post(DELETE, json={"items": refs})
    assert r.status_code == 404
    assert r.get_json()["error"] == "2 objects not found: default/Service/b, ..."
    assert [d["index"] for d in r.get_json()["denials"]] == [0, 1]

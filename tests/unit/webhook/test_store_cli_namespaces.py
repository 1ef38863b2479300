"""`smictl apply`, `get` and `delete` against a real store API (the Flask app, its SQLite store
and admission chain, behind a local HTTP bridge that holds the admin token), as the CLI audit
found them:

- `delete -f FILE -n NS` ignored `-n`: a file naming no namespace deleted `default/s1` when
  `shop/s1` was asked for, and a file naming `shop` was deleted from `shop` with `-n other`.
  `-n` is now, as in kubectl, the namespace of objects that name none, and an object naming
  another is refused at its line before anything is sent; `apply` takes `-n` the same way.
- `delete -f` checked the whole schema: a manifest carrying only its identity was refused with
  `spec: required field missing`.
- `apply -o json` gave denials `"file": "<request>", "line": null`.
- `get nosuch` was exit 1, not the usage error (2) the README documents; short names
  (`ts`, `tt`, ...) were unknown.
- `apply` of an empty file said `no objects to send in FILE`, without the `FILE: ` prefix and
  the words every other command uses.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from local_admin import admin_client, with_admin_token

from smi.cli import main
from webhook import logs
from webhook.settings import Settings
from webhook.store_cli import SHORT_NAMES

ROOT = Path(__file__).resolve().parents[3]
OBJECTS = "/apis/smictl.io/v1/objects"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return with_admin_token(settings, tmp_path)


class Bridge:
    """Plain HTTP on 127.0.0.1 to the app's test client, which sends the admin token (the
    CLI sends it over https only): the CLI's requests reach the real store API in-process.
    Counts the writes that reached it."""

    def __init__(self, client: FlaskClient) -> None:
        self.writes = 0
        lock = threading.Lock()
        bridge = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with lock:
                    self.answer(client.get(self.path))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    bridge.writes += 1
                    self.answer(client.post(self.path, data=body, content_type="application/json"))

            def answer(self, r: Any) -> None:
                data = r.get_data()
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return admin_client(app)


@pytest.fixture
def bridge(
    admin: FlaskClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Bridge]:
    # The app's JSON log lines go to the standard error of whichever test made the first app
    # (by now maybe closed), not to the CLI's standard error these tests read.
    for name in (logs.ACCESS, logs.DECISION, logs.SERVER):
        for handler in logging.getLogger(name).handlers:
            if getattr(handler, "_smictl", False):
                monkeypatch.setattr(handler, "stream", io.StringIO())
    capsys.readouterr()  # what making the app logged
    b = Bridge(admin)
    yield b
    b.server.shutdown()
    b.server.server_close()


def smictl(
    capsys: pytest.CaptureFixture[str], bridge: Bridge, *argv: str
) -> tuple[int, str, list[str]]:
    """(exit code, standard output, standard error lines) of `smictl ARGV --server BRIDGE`."""
    try:
        code = main([*argv, "--server", bridge.url])
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def split(name: str, namespace: str | None = None, service: str = "web") -> dict[str, Any]:
    meta = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": meta,
        "spec": {
            "service": service,
            "backends": [{"service": f"{service}-v1", "weight": 90},
                         {"service": f"{service}-v2", "weight": 10}],
        },
    }  # fmt: skip


def write(path: Path, *docs: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


def stored(admin: FlaskClient) -> set[tuple[str, str, str]]:
    items = admin.get(OBJECTS).get_json()["items"]
    return {(i["kind"], i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in items}


@pytest.fixture
def two_s1(admin: FlaskClient) -> None:
    """The store holds TrafficSplit s1 in `default` and in `shop`."""
    r = admin.post(
        "/apis/smictl.io/v1/apply",
        json={"items": [split("s1", "default"), split("s1", "shop", service="api")]},
    )
    assert r.status_code == 200, r.get_json()


S1 = ("TrafficSplit", "default", "s1")
SHOP_S1 = ("TrafficSplit", "shop", "s1")


# --- H1: -n ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("two_s1")
def test_delete_f_puts_objects_without_a_namespace_in_dash_n(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bridge: Bridge, admin: FlaskClient
) -> None:
    manifest = write(tmp_path / "split.yaml", split("s1"))
    code, out, err = smictl(capsys, bridge, "delete", "-f", manifest, "-n", "shop")
    assert code == 0, err
    # Before: "TrafficSplit default/s1 deleted", and shop/s1 was still there.
    assert out.splitlines()[0] == "TrafficSplit shop/s1 deleted"
    assert stored(admin) == {S1}


@pytest.mark.usefixtures("two_s1")
def test_delete_f_without_dash_n_deletes_from_the_namespace_the_file_names_or_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bridge: Bridge, admin: FlaskClient
) -> None:
    manifest = write(tmp_path / "split.yaml", split("s1", "shop"))
    code, out, err = smictl(capsys, bridge, "delete", "-f", manifest)
    assert code == 0 and out.splitlines()[0] == "TrafficSplit shop/s1 deleted", err
    manifest = write(tmp_path / "split.yaml", split("s1"))
    code, out, err = smictl(capsys, bridge, "delete", "-f", manifest)
    assert code == 0 and out.splitlines()[0] == "TrafficSplit default/s1 deleted", err
    assert stored(admin) == set()


@pytest.mark.usefixtures("two_s1")
@pytest.mark.parametrize("command", ["delete", "apply"])
def test_an_object_naming_another_namespace_than_dash_n_is_refused_and_nothing_sent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    bridge: Bridge,
    admin: FlaskClient,
    command: str,
) -> None:
    manifest = write(tmp_path / "split.yaml", split("s2", "shop"), split("s1", "shop"))
    code, _, err = smictl(capsys, bridge, command, "-f", manifest, "-n", "other")
    # Before: `delete` deleted shop/s1 silently; `apply` had no -n at all (exit 2).
    assert code == 1
    assert err == [
        f"{manifest}:{line}: metadata.namespace: the namespace of the object 'shop' does not "
        "match -n 'other': pass -n shop (or no -n), or change the file (SMI2004)"
        for line in (5, 18)
    ]
    assert bridge.writes == 0
    assert stored(admin) == {S1, SHOP_S1}


@pytest.mark.usefixtures("two_s1")
@pytest.mark.parametrize("command", ["delete", "apply"])
def test_a_json_object_naming_another_namespace_is_refused_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bridge: Bridge, command: str
) -> None:
    manifest = tmp_path / "split.json"
    manifest.write_text(json.dumps(split("s1", "shop"), indent=2))
    code, _, err = smictl(capsys, bridge, command, "-f", str(manifest), "-n", "other")
    assert code == 1 and bridge.writes == 0
    assert len(err) == 1 and err[0].startswith(f"{manifest}:6: metadata.namespace: "), err


def test_apply_puts_objects_without_a_namespace_in_dash_n(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bridge: Bridge, admin: FlaskClient
) -> None:
    manifest = write(tmp_path / "split.yaml", split("s1"), split("s2", "shop", service="api"))
    code, out, err = smictl(capsys, bridge, "apply", "-f", manifest, "-n", "shop")
    assert code == 0, err
    assert out.splitlines()[:2] == ["TrafficSplit shop/s1 created", "TrafficSplit shop/s2 created"]
    assert stored(admin) == {SHOP_S1, ("TrafficSplit", "shop", "s2")}
    first = next(yaml.safe_load_all(Path(manifest).read_text()))
    assert "namespace" not in first["metadata"]  # the file is not changed


def test_a_namespace_object_is_not_refused_for_dash_n(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bridge: Bridge, admin: FlaskClient
) -> None:
    """A Namespace has no namespace: `-n` neither contradicts it nor is given to it."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    manifest = write(tmp_path / "ns.yaml", namespace, split("s1"))
    code, out, err = smictl(capsys, bridge, "apply", "-f", manifest, "-n", "shop")
    assert code == 0, err
    assert out.splitlines()[:2] == ["Namespace shop created", "TrafficSplit shop/s1 created"]
    assert stored(admin) == {("Namespace", "", "shop"), SHOP_S1}
    code, out, err = smictl(capsys, bridge, "delete", "-f", manifest, "-n", "shop")
    assert code == 0 and stored(admin) == set(), err
    assert out.splitlines()[:2] == ["Namespace shop deleted", "TrafficSplit shop/s1 deleted"]


# --- L6: delete -f reads only the identity ----------------------------------------------------


@pytest.mark.usefixtures("two_s1")
def test_delete_f_needs_only_the_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bridge: Bridge, admin: FlaskClient
) -> None:
    manifest = tmp_path / "ids.yaml"
    manifest.write_text(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n"
        "metadata: {name: s1, namespace: shop}\n"
        "---\n"
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplitList\n"
        "items:\n- metadata: {name: s1}\n"
    )
    code, out, err = smictl(capsys, bridge, "delete", "-f", str(manifest))
    # Before: ids.yaml:1: spec: required field missing (SMI2002), for both.
    assert code == 0, err
    assert out.splitlines()[:2] == [
        "TrafficSplit shop/s1 deleted",
        "TrafficSplit default/s1 deleted",
    ]
    assert stored(admin) == set()


def test_delete_f_still_refuses_what_is_no_stored_kind_or_has_no_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bridge: Bridge
) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: split.smi-spec.io/v1alpha9\nkind: TrafficSplit\nmetadata: {name: a}\n"
        "---\n"
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficTarget\nmetadata: {name: b}\n"
        "---\n"
        "apiVersion: v1alpha4\nkind: TrafficSplit\nmetadata: {name: c}\n"
        "---\n"
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n"
        "metadata:\n  namespace: shop\n"
        "---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d}\n"
    )
    code, _, err = smictl(capsys, bridge, "delete", "-f", str(manifest))
    assert code == 1 and bridge.writes == 0
    m = str(manifest)
    assert err == [
        f"{m}:18: warning: skipped v1 ConfigMap: not an SMI resource or a context object (SMI1008)",
        f"{m}:1: apiVersion: split.smi-spec.io/v1alpha9 is not a served SMI version "
        "(served: v1alpha1, v1alpha2, v1alpha3, v1alpha4) (SMI1006)",
        f"{m}:6: kind: split.smi-spec.io/v1alpha4 has no kind TrafficTarget (it defines "
        "TrafficSplit) (SMI1007)",
        f"{m}:9: apiVersion: TrafficSplit is an SMI kind, but apiVersion 'v1alpha4' is not an "
        "SMI group (expected split.smi-spec.io/<version>) (SMI1011)",
        f"{m}:15: metadata.name: metadata.name missing (SMI1009)",
    ]


# --- L1: apply -o json ------------------------------------------------------------------------


def test_apply_json_denials_carry_the_file_and_line_the_text_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bridge: Bridge
) -> None:
    # Two TrafficSplits for one root service in one batch: the second is denied.
    manifest = write(tmp_path / "split-conflict.yaml", split("a", "shop"), split("b", "shop"))
    code, _, text = smictl(capsys, bridge, "apply", "-f", manifest)
    assert code == 1
    code, out, err = smictl(capsys, bridge, "apply", "-f", manifest, "-o", "json")
    assert code == 1 and err == text
    body = json.loads(out)
    located = [
        f"{d['file']}:{d['line']}: {d['path']}: {d['message']} ({d['code']})"
        for denial in body["denials"]
        for d in denial["diagnostics"]
    ]
    # Before: "file": "<request>", "line": null.
    assert located and located == text[: len(located)]
    assert all(line.startswith(f"{manifest}:") for line in located)


# --- L3: get's kinds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [["get", "nosuch"], ["delete", "nosuch", "x"], ["delete", "all", "x"]]
)
def test_an_unknown_kind_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], bridge: Bridge, argv: list[str]
) -> None:
    code, _, err = smictl(capsys, bridge, *argv)
    assert code == 2 and len(err) == 1, err  # before: exit 1
    assert err[0].startswith(f"smictl {argv[0]}: error: argument kind: ")
    if argv[1] == "nosuch":
        assert "unknown kind 'nosuch'; one of all, TrafficTarget (tt), " in err[0]
        assert err[0].endswith("CronJob (cj) (SMI1007)")
    assert bridge.writes == 0


@pytest.mark.usefixtures("two_s1")
@pytest.mark.parametrize("name", ["ts", "TS", "trafficsplits", "TrafficSplit"])
def test_get_takes_kinds_by_short_name(
    capsys: pytest.CaptureFixture[str], bridge: Bridge, name: str
) -> None:
    code, out, err = smictl(capsys, bridge, "get", name, "-n", "shop")
    assert code == 0, err
    assert [line.split()[:3] for line in out.splitlines()[1:]] == [["TrafficSplit", "shop", "s1"]]


def test_the_smi_short_names_are_the_crds() -> None:
    crds = {}
    for path in sorted((ROOT / "charts" / "smictl" / "crds").glob("*.yaml")):
        names = yaml.safe_load(path.read_text())["spec"]["names"]
        crds.update({short: names["kind"] for short in names.get("shortNames", [])})
    smi = {short: kind for short, kind in SHORT_NAMES.items() if kind in crds.values()}
    assert smi == crds and len(crds) == 5


# --- L2: nothing to send ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["apply", "delete"])
@pytest.mark.parametrize(
    "case",
    [
        ("", "no objects: empty or only comments and '---'"),
        ("# nothing\n---\n", "no objects: empty or only comments and '---'"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
         "no SMI objects, only 1 object of other kinds"),
    ],
)  # fmt: skip
def test_nothing_to_send_is_said_as_every_command_says_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    bridge: Bridge,
    command: str,
    case: tuple[str, str],
) -> None:
    text, said = case
    empty = tmp_path / "empty.yaml"
    empty.write_text(text)
    code, _, err = smictl(capsys, bridge, command, "-f", str(empty))
    done = "applied" if command == "apply" else "deleted"
    assert code == 1 and bridge.writes == 0
    # Before: "no objects to send in .../empty.yaml (SMI1012)".
    assert err[-1] == f"{empty}: {said}; nothing {done} (SMI1012)"

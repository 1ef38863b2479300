"""What `smictl apply` and `delete -f` send to a real store API (the Flask app and its SQLite
store, behind the local HTTP bridge of test_store_cli_namespaces):

- A manifest holding a number JSON cannot carry (`.inf`, `-.inf`, `.nan` in YAML; `Infinity`,
  `NaN` in a .json file, which Python's reader takes) was sent as `Infinity`, and the server's
  refusal named neither file nor line: `control plane refused the request: request body is not
  JSON: Infinity is not a JSON number (RFC 8259) (SMI7002)`. It is now refused before anything
  is sent, one line per object at the line of the field.
- `delete -f` of a file holding two identical copies of one object (which `apply` takes as one
  object) was refused with `appears twice in one delete (SMI2007)`; the object is now deleted
  once, in the order of first appearance.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from local_admin import admin_client, with_admin_token
from test_store_cli_namespaces import Bridge, smictl, split, stored, write

from smi.errors import SMIError
from webhook import logs
from webhook.client import ControlPlaneClient
from webhook.settings import Settings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return with_admin_token(settings, tmp_path)


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return admin_client(app)


@pytest.fixture
def bridge(
    admin: FlaskClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Bridge]:
    # As in test_store_cli_namespaces: the app's log lines must not reach the CLI's stderr.
    for name in (logs.ACCESS, logs.DECISION, logs.SERVER):
        for handler in logging.getLogger(name).handlers:
            if getattr(handler, "_smictl", False):
                monkeypatch.setattr(handler, "stream", io.StringIO())
    capsys.readouterr()
    b = Bridge(admin)
    yield b
    b.server.shutdown()
    b.server.server_close()


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  minReadySeconds: {value}
  replicas: 1
"""


# --- numbers JSON cannot carry ------------------------------------------------------------------


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN", "+.Inf"])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_number_json_cannot_carry_is_refused_at_its_line_and_nothing_sent(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    bridge: Bridge,
    value: str,
    dry_run: bool,
) -> None:
    manifest = tmp_path / "dep.yaml"
    manifest.write_text(DEPLOYMENT.replace("{value}", value))
    argv = ["apply", "-f", str(manifest), *(["--dry-run"] if dry_run else [])]
    code, out, err = smictl(capsys, bridge, *argv)
    spelled = {".inf": ".inf", "+.Inf": ".inf", "-.inf": "-.inf"}.get(value, ".nan")
    # Before: control plane refused the request: request body is not JSON: Infinity is not a
    # JSON number (RFC 8259) (SMI7002), with neither file nor line.
    assert (code, out) == (1, "")
    assert err == [
        f"{manifest}:5: spec.minReadySeconds: {spelled} is not a number JSON can carry (SMI2003)"
    ]
    assert bridge.writes == 0  # nothing sent, so nothing stored


def test_one_line_per_object_at_its_first_such_field_in_any_kind_and_file_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bridge: Bridge, admin: FlaskClient
) -> None:
    """A Service inside a `kind: List` (located through its document's text), an SMI object
    (through its own line map), and a .json file, whose reader takes `NaN` and `Infinity`."""
    services = tmp_path / "svc.yaml"
    services.write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: v1\n  kind: Service\n  metadata: {name: web, namespace: shop}\n"
        "  spec:\n    ports:\n    - port: 8080\n      weird: [1, .nan]\n"
        "    other: -.inf\n"
        "    third: .inf\n"
    )
    good = write(tmp_path / "split.yaml", split("s1", "shop"))
    doc = tmp_path / "dep.json"
    doc.write_text(
        '{\n  "apiVersion": "apps/v1",\n  "kind": "Deployment",\n'
        '  "metadata": {"name": "web", "namespace": "shop"},\n'
        '  "spec": {\n    "replicas": 1,\n    "minReadySeconds": -Infinity\n  }\n}\n'
    )
    code, _, err = smictl(capsys, bridge, "apply", "-f", str(services), "-f", good, "-f", str(doc))
    assert code == 1
    assert err == [
        f"{doc}:7: spec.minReadySeconds: -Infinity is not a number JSON can carry (SMI2003)",
        f"{services}:10: spec.ports[0].weird[1]: .nan is not a number JSON can carry (also "
        "spec.other, spec.third) (SMI2003)",
    ]
    assert bridge.writes == 0 and stored(admin) == set()


def test_an_smi_object_holding_one_is_refused_at_the_field_the_schema_lets_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bridge: Bridge
) -> None:
    """metadata takes what it does not look into (Kubernetes' fields, not SMI's): here a
    managed field's free-form `fieldsV1` (a top-level `generation: .nan` is now refused as
    not an integer, before this check)."""
    manifest = tmp_path / "split.yaml"
    manifest.write_text(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n"
        "metadata:\n  name: s1\n  namespace: shop\n  managedFields:\n"
        "  - {manager: m, fieldsV1: {f: .nan}}\n"
        "spec:\n  service: web\n  backends:\n  - {service: web-v1, weight: 1}\n"
    )
    code, _, err = smictl(capsys, bridge, "apply", "-f", str(manifest))
    assert code == 1 and bridge.writes == 0
    assert err == [f"{manifest}:7: metadata.managedFields[0].fieldsV1.f: .nan is not a number "
                   "JSON can carry (SMI2003)"]  # fmt: skip


def test_finite_floats_are_still_applied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bridge: Bridge, admin: FlaskClient
) -> None:
    manifest = tmp_path / "dep.yaml"
    manifest.write_text(DEPLOYMENT.replace("{value}", "1.5e3"))
    code, out, err = smictl(capsys, bridge, "apply", "-f", str(manifest))
    assert code == 0, err
    assert out.splitlines()[0] == "Deployment shop/web created"
    assert stored(admin) == {("Deployment", "shop", "web")}


@pytest.mark.parametrize("number", [math.inf, -math.inf, math.nan])
def test_the_client_never_sends_a_number_json_cannot_carry(bridge: Bridge, number: float) -> None:
    """Whatever the caller hands it: one line, no traceback, nothing sent."""
    client = ControlPlaneClient(server=bridge.url)
    with pytest.raises(SMIError) as caught:
        client.request("POST", "/apis/smictl.io/v1/apply", body={"items": [{"x": [number]}]})
    [d] = caught.value.diagnostics
    assert d.code == "SMI2003"
    assert d.format() == (
        "the request holds a value JSON cannot carry (Out of range float values are not JSON "
        "compliant); nothing was sent (SMI2003)"
    )
    assert bridge.writes == 0


# --- delete of one object written twice ---------------------------------------------------------


def test_delete_of_an_object_written_twice_deletes_it_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bridge: Bridge, admin: FlaskClient
) -> None:
    manifest = write(
        tmp_path / "f.yaml", split("s1", "shop"), split("s2", "shop", service="api"),
        split("s1", "shop"), split("s2", "shop", service="api"),
    )  # fmt: skip
    code, out, err = smictl(capsys, bridge, "apply", "-f", manifest)
    # apply takes the copies as one object each.
    assert out.splitlines()[:2] == ["TrafficSplit shop/s1 created", "TrafficSplit shop/s2 created"]
    assert code == 0 and stored(admin) == {("TrafficSplit", "shop", n) for n in ("s1", "s2")}
    code, out, err = smictl(capsys, bridge, "delete", "-f", manifest)
    # Before: f.yaml:35: metadata.name: shop/TrafficSplit/s1 appears twice in one delete
    # (SMI2007), and the same for s2; nothing deleted.
    assert (code, err) == (0, [])
    assert out.splitlines() == [
        "TrafficSplit shop/s1 deleted",
        "TrafficSplit shop/s2 deleted",
        "revision 2",
    ]
    assert bridge.writes == 2 and stored(admin) == set()


def test_delete_of_one_object_under_two_versions_and_defaulted_namespace_deletes_it_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bridge: Bridge, admin: FlaskClient
) -> None:
    """The store keys an object by API group, not version, and `default` is the namespace of
    one that names none: these are one object, as `apply` would store one."""
    admin.post("/apis/smictl.io/v1/apply", json={"items": [split("s1", "default")]})
    older = {**split("s1"), "apiVersion": "split.smi-spec.io/v1alpha3"}
    manifest = write(tmp_path / "f.yaml", split("s1", "default"), older)
    code, out, err = smictl(capsys, bridge, "delete", "-f", manifest)
    assert (code, err) == (0, [])
    assert out.splitlines()[:-1] == ["TrafficSplit default/s1 deleted"]
    assert stored(admin) == set()

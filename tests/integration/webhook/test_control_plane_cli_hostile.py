"""`smictl apply/get/delete` against a real control plane, used the way a platform engineer
does: directories with one bad object, `get -o yaml` edited and applied back, delete -f of a
file with an object already gone, a client holding the wrong CA. Every refusal is one line per
problem at file:line, exit 1, and nothing half-applied."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from control_plane_harness import SMICTL, Server, split

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def write(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def names(server: Server, ns: str) -> dict[str, int]:
    got = server.smictl("get", "trafficsplits", "-n", ns, "-o", "json")
    assert got.returncode == 0, got.stderr
    items = yaml.safe_load(got.stdout)["items"]
    return {i["metadata"]["name"]: i["spec"]["backends"][0]["weight"] for i in items}


def test_a_directory_whose_fifth_of_eight_objects_is_bad_applies_none(
    server: Server, tmp_path: Path
) -> None:
    for i in range(8):
        weights = (0, 0) if i == 4 else (90, 10)
        write(tmp_path / f"{i}.yaml", [split(f"s{i}", f"svc{i}", ns="eight", weights=weights)])
    r = server.smictl("apply", "-f", str(tmp_path))
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if "warning" not in line]
    assert errors[0].startswith(f"{tmp_path / '4.yaml'}:") and "(SMI2104)" in errors[0]
    assert "nothing was changed" in errors[-1] and "Traceback" not in r.stderr
    assert names(server, "eight") == {}


def test_get_output_applies_back_unchanged_and_a_stale_copy_conflicts(
    server: Server, tmp_path: Path
) -> None:
    first = write(tmp_path / "a.yaml", [split("a", "web", ns="rv")])
    assert server.smictl("apply", "-f", str(first)).returncode == 0
    read = server.smictl("get", "trafficsplit", "a", "-n", "rv", "-o", "yaml")
    copy = tmp_path / "copy.yaml"
    copy.write_text(read.stdout)
    again = server.smictl("apply", "-f", str(copy))
    assert again.returncode == 0, again.stderr
    assert "TrafficSplit rv/a unchanged" in again.stdout  # before: "configured", new revision

    # Someone else moves the split; the copy read before that must not undo it.
    moved = write(tmp_path / "b.yaml", [split("a", "web", ns="rv", weights=(80, 20))])
    other = server.smictl("apply", "-f", str(moved))
    assert other.returncode == 0, other.stderr
    doc = yaml.safe_load(copy.read_text())
    doc["spec"]["backends"][0]["weight"], doc["spec"]["backends"][1]["weight"] = 85, 15
    stale = write(tmp_path / "stale.yaml", [doc])
    r = server.smictl("apply", "-f", str(stale))
    assert r.returncode == 1
    [line] = [x for x in r.stderr.splitlines() if "resourceVersion" in x]
    assert line.startswith(f"{stale}:") and "metadata.resourceVersion:" in line
    assert names(server, "rv") == {"a": 80}  # before: 85, the other update silently lost


def test_delete_f_with_one_object_gone_names_it_and_deletes_nothing(
    server: Server, tmp_path: Path
) -> None:
    present = write(tmp_path / "present.yaml", [split("here", "web", ns="del")])
    assert server.smictl("apply", "-f", str(present)).returncode == 0
    both = write(
        tmp_path / "both.yaml", [split("here", "web", ns="del"), split("gone", "api", ns="del")]
    )
    r = server.smictl("delete", "-f", str(both))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"{both}:") and "del/TrafficSplit/gone not found (SMI7004)" in first
    assert names(server, "del") == {"here": 90}
    ok = server.smictl("delete", "-f", str(both), "--ignore-not-found")
    assert ok.returncode == 0 and "TrafficSplit del/here deleted" in ok.stdout
    assert names(server, "del") == {}


def test_a_context_object_with_a_list_for_a_namespace_is_refused_at_its_line(
    server: Server, tmp_path: Path
) -> None:
    bad = tmp_path / "svc.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: ok, namespace: ctx}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: [ctx]\n"
    )
    r = server.smictl("apply", "-f", str(bad))
    assert r.returncode == 1, r.stdout  # before: stored as namespace "['ctx']"
    assert r.stderr.splitlines()[0].startswith(f"{bad}:9: metadata.namespace:")
    got = server.smictl("get", "services", "-A", "-o", "json")
    assert '"ctx"' not in got.stdout and "['ctx']" not in got.stdout


def test_a_server_certificate_from_another_ca_is_one_certificate_line(
    server: Server, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    init = subprocess.run([*SMICTL, "certs", "init", "--dir", str(other)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert init.returncode == 0, init.stderr
    env = {**os.environ, "SMICTL_SERVER": server.url, "SMICTL_CA_FILE": str(other / "ca.crt")}
    r = subprocess.run([*SMICTL, "get", "trafficsplits", "-A"], capture_output=True, text=True,
                       env=env, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 1
    [line] = r.stderr.splitlines()
    assert "is not trusted" in line and "--ca" in line and line.endswith("(SMI7003)")

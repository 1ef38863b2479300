"""Manifests smictl prints read back as written in the Kubernetes tools' YAML parsers: a string
any YAML 1.1 or 1.2 reader could take for a bool, null or number is double-quoted. `smictl
inject` printed `sha: 1234e56`, `value: 0o17`, `value: y` plain, which go-yaml reads as a
float, the integer 15 and (YAML 1.1) true."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smi.cli import main
from smi.yamlout import Dumper, needs_quotes

TRICKY = ["1234e56", "1e3", "+1e3", "0o17", "0x1F", "1_000", "12:30", ".5", "-.inf", ".nan",
          "y", "N", "yes", "Off", "~", "null", "007", "<<", "="]  # fmt: skip
PLAIN = ["web", "v1alpha4", "app.kubernetes.io/name", "a1", "e3", "o17", "shop/web", "x-y"]


@pytest.mark.parametrize("text", TRICKY)
def test_a_string_a_reader_could_take_for_something_else_is_double_quoted(text: str) -> None:
    assert needs_quotes(text)
    out = yaml.dump({"v": text}, Dumper=Dumper)
    assert out == f'v: "{text}"\n'
    assert yaml.safe_load(out) == {"v": text}


@pytest.mark.parametrize("text", PLAIN)
def test_an_ordinary_string_stays_plain(text: str) -> None:
    assert not needs_quotes(text)
    assert yaml.dump({"v": text}, Dumper=Dumper) == f"v: {text}\n"


def test_inject_keeps_quoted_strings_quoted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "init", "--dir", str(tmp_path / "ca")]) == 0
    pod = tmp_path / "pod.yaml"
    pod.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {sha: '1234e56'}}\n"
        "spec:\n  containers:\n  - name: app\n    image: x\n"
        "    env: [{name: A, value: 'y'}, {name: C, value: '0o17'}]\n",
        encoding="utf-8",
    )
    capsys.readouterr()
    assert main(["inject", "-f", str(pod), "--mesh-ca-cert", str(tmp_path / "ca" / "ca.crt")]) == 0
    out = capsys.readouterr().out
    assert 'sha: "1234e56"' in out and 'value: "y"' in out and 'value: "0o17"' in out

"""`smictl inject` refusals name one path, the field's, at the field's line: a pod's own path
joins its template's (`spec.template.spec.containers[0].ports[0]`, where the message carried
`spec.containers[0]...` after `spec.template:`), and a malformed pod's field is no longer
reported at the document's first line."""

from __future__ import annotations

from pathlib import Path

import pytest

from smi.cli import main

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad, namespace: shop}
spec:
  template:
    metadata: {labels: {app: x}}
    spec:
      containers:
      - name: app
        image: x
        ports:
        - containerPort: 15006
---
apiVersion: v1
kind: Pod
metadata: {name: v, namespace: shop}
spec:
  containers:
  - {name: a, image: x}
  - name: b
    image: x
    ports:
    - containerPort: "80"
"""


def test_each_refusal_is_at_its_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "init", "--dir", str(tmp_path / "ca")]) == 0
    path = tmp_path / "in.yaml"
    path.write_text(MANIFEST, encoding="utf-8")
    capsys.readouterr()
    code = main(["inject", "-f", str(path), "--mesh-ca-cert", str(tmp_path / "ca" / "ca.crt")])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    lines = [line.removeprefix(f"{path}:") for line in err.splitlines() if "SMI7011" in line]
    assert [line.split(": ", 2)[:2] for line in lines] == [
        ["12", "spec.template.spec.containers[0].ports[0]"],
        ["23", "spec.containers[1].ports[0].containerPort"],
    ]

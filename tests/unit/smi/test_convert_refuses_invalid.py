"""`smictl convert` refuses an object that `smictl validate` would call invalid on its own,
with validate's one-line diagnostics and nothing on standard output. It converted them and
exited 0, so a CI step that only converted shipped a split with a negative weight."""

from __future__ import annotations

from pathlib import Path

import pytest

from smi import cli

BAD = {
    "negative weight": (
        "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\n"
        "metadata: {name: s, namespace: shop}\nspec:\n  service: web\n  backends:\n"
        "  - {service: a, weight: -5}\n  - {service: b, weight: 10}\n",
        "split.smi-spec.io/v1alpha4",
        "bad.yaml:7: spec.backends[0].weight: must be an integer >= 0 (got -5) (SMI2103)",
    ),
    "no rules": (
        "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\n"
        "metadata: {name: t, namespace: shop}\nspec:\n"
        "  destination: {kind: ServiceAccount, name: db, namespace: shop}\n"
        "  sources: [{kind: ServiceAccount, name: web, namespace: shop}]\n  rules: []\n",
        "access.smi-spec.io/v1alpha2",
        "bad.yaml:7: spec.rules:",
    ),
    "unknown method": (
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n"
        "metadata: {name: r, namespace: shop}\nspec:\n  matches:\n"
        "  - name: m\n    methods: [FOO]\n",
        "specs.smi-spec.io/v1alpha3",
        "bad.yaml:7: spec.matches[0].methods[0]:",
    ),
}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", list(BAD))
def test_an_invalid_object_is_refused_with_validates_diagnostic(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, to, expected = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    code, out, err = _run(capsys, "convert", "-f", str(path), "--to", to)
    assert (code, out) == (1, "")
    assert err.startswith(str(tmp_path / expected)), err
    assert "Traceback" not in err


def test_objects_of_other_groups_are_not_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only what is converted is checked: a bad object of another group passes through."""
    negative, _, _ = BAD["negative weight"]
    good = (
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\n"
        "metadata: {name: r, namespace: shop}\nspec: {matches: {ports: [80]}}\n"
    )
    path = tmp_path / "mixed.yaml"
    path.write_text(negative + "---\n" + good, encoding="utf-8")
    code, out, err = _run(capsys, "convert", "-f", str(path), "--to", "specs.smi-spec.io/v1alpha4")
    assert (code, err) == (0, ""), err
    assert "weight: -5" in out

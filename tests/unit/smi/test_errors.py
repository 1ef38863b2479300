"""`Diagnostic.format` is one line, whatever user text a message quotes."""

from __future__ import annotations

from smi.errors import Diagnostic


def test_control_characters_in_user_text_are_escaped_not_printed() -> None:
    diag = Diagnostic(
        code="SMI1007",
        message="access.smi-spec.io/v1alpha1 has no kind 'Traffic\nTarget\r\x1b[2J'",
        path="kind",
        file="split.yaml",
        line=4,
    )
    assert diag.format() == (
        "split.yaml:4: kind: access.smi-spec.io/v1alpha1 has no kind "
        "'Traffic\\nTarget\\r\\x1b[2J' (SMI1007)"
    )


def test_plain_messages_are_unchanged() -> None:
    diag = Diagnostic(
        code="SMI2103",
        message="must be an integer >= 0",
        path="spec.backends[1].weight",
        file="split.yaml",
        line=14,
    )
    assert (
        diag.format() == "split.yaml:14: spec.backends[1].weight: must be an integer >= 0 (SMI2103)"
    )


def test_long_user_input_is_elided_in_the_text_form_but_kept_in_json() -> None:
    name = "n" * 50_000 + "END"
    d = Diagnostic(
        code="SMI2001",
        message=f"metadata.name: {name!r} is not a DNS-1123 label",
        path="spec.rules[0].matches." + "k" * 5_000,
        file="x.yaml",
        line=3,
    )
    line = d.format()
    assert len(line) < 1_500 and "\n" not in line
    assert line.startswith("x.yaml:3: spec.rules[0].matches.kkk")
    assert line.endswith("END' is not a DNS-1123 label (SMI2001)")
    assert "characters]..." in line
    assert d.to_json()["message"] == d.message  # machine output keeps it whole

"""The chart's templates read as text, without helm: every action balanced, every `.Values`
path one that values.yaml defines, every named template defined, every value used somewhere.
The checker itself is tested on broken snippets so that a pass means something."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from chart_support import (
    CHART,
    TEMPLATES,
    block_problems,
    defined_templates,
    used_templates,
    value_paths,
    values_references,
)

VALUES = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
PATHS = set(value_paths(VALUES))
TEMPLATE_FILES = sorted(p for p in TEMPLATES.iterdir() if p.suffix in {".yaml", ".tpl", ".txt"})
ALL_TEXT = {p.name: p.read_text(encoding="utf-8") for p in TEMPLATE_FILES}


def test_templates_exist() -> None:
    names = set(ALL_TEXT)
    for required in ("NOTES.txt", "_helpers.tpl", "deployment.yaml", "webhooks.yaml", "rbac.yaml"):
        assert required in names


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.name)
def test_template_actions_are_balanced(path: Path) -> None:
    assert block_problems(path.read_text(encoding="utf-8"), path.name) == []


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: p.name)
def test_template_only_reads_values_that_exist(path: Path) -> None:
    missing = [
        f"{path.name}:{line}: .Values.{ref}"
        for line, ref in values_references(path.read_text(encoding="utf-8"))
        if ref not in PATHS
    ]
    assert missing == []


def test_every_included_template_is_defined() -> None:
    defined = set().union(*(defined_templates(t) for t in ALL_TEXT.values()))
    used = set().union(*(used_templates(t) for t in ALL_TEXT.values()))
    assert used - defined == set()
    assert defined - used == set(), "defined but never used"


def test_every_value_is_read_by_some_template() -> None:
    refs = {ref for text in ALL_TEXT.values() for _, ref in values_references(text)}
    # A value counts as read when a template reads it, a parent of it (toYaml of a block) or a
    # child of it.
    unread = [
        p
        for p in sorted(PATHS)
        if not any(p == r or p.startswith(r + ".") or r.startswith(p + ".") for r in refs)
    ]
    assert unread == [], "values nobody reads are dead configuration"


def test_values_paths_in_helpers_and_notes_are_checked_too() -> None:
    # The scanner must see references inside define blocks and NOTES.txt.
    refs = {ref for _, ref in values_references(ALL_TEXT["_helpers.tpl"])}
    assert "controlPlane.serviceAccount.name" in refs
    assert "mesh.mode" in {ref for _, ref in values_references(ALL_TEXT["NOTES.txt"])}


@pytest.mark.parametrize(
    ("snippet", "problem"),
    [
        ("{{ if .Values.a }}x", "if is never closed"),
        ("{{- range .Values.a }}{{ end }}{{ end }}", "end without an opening block"),
        ("{{ else }}", "else outside if/range/with"),
        ("{{ .Values.a }", "'{{' but"),
        ('{{- define "x" }}{{ with .Values.a }}{{ end -}}', "define is never closed"),
        ("{{/* open comment }}", "unterminated comment"),
    ],
)
def test_block_checker_reports_broken_templates(snippet: str, problem: str) -> None:
    assert any(problem in p for p in block_problems(snippet, "t.yaml"))


def test_block_checker_accepts_else_if_and_comments() -> None:
    ok = "{{/* if, range */}}{{- if .A }}a{{ else if .B }}b{{ else }}c{{ end }}"
    assert block_problems(ok, "t.yaml") == []


def test_values_scanner_finds_dollar_and_nested_paths() -> None:
    text = (
        '{{ $.Values.image.tag }} {{ include "x" (dict "v" .Values.mesh.mode) }}'
        " {{ $root.Values.demo.enabled }} {{ .Values.nope.x }}"
    )
    refs = [r for _, r in values_references(text)]
    assert refs == ["image.tag", "mesh.mode", "demo.enabled", "nope.x"]
    assert "nope.x" not in PATHS

"""Fixtures for the conformance suite's unit tests: small scenarios written as YAML text."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.catalog import load_text
from conformance.model import Scenario

MINIMAL = """
description: a caller without a TrafficTarget is denied
capability: traffic-access/default-deny
smi_versions: [access.smi-spec.io/v1alpha3]
workloads:
  - identity: shop/frontend
  - identity: shop/catalog
    services: [catalog]
    ports: [8080]
steps:
  - request: {from: shop/frontend, to: catalog, count: 2}
    expect: {status: 403, denied: 2}
"""


@pytest.fixture
def scenario_text() -> str:
    return MINIMAL


@pytest.fixture
def make_scenario() -> Callable[..., Scenario]:
    def make(text: str = MINIMAL, *, name: str = "access/example") -> Scenario:
        return load_text(textwrap.dedent(text), name=name, filename=f"{name}.yaml")

    return make


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Write {name: yaml text} as <tmp>/<name>.yaml and return the directory."""

    def write(files: dict[str, str]) -> Path:
        for name, text in files.items():
            path = tmp_path / f"{name}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return tmp_path

    return write

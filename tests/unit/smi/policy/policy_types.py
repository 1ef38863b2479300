"""Types of the policy tests' fixtures, in a module of their own: test modules cannot import
`conftest` by name once several test directories each have one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

WritePolicy = Callable[..., Path]
RunCli = Callable[..., tuple[int, str, str]]

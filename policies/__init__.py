"""The Rego policies shipped with smictl (package data): `admission/<area>/<policy>/`."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADMISSION = ROOT / "admission"

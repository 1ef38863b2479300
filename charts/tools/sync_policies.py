"""Copy the repository's Rego policies into the chart (charts/smictl/files/policies/).

Helm packages only files inside the chart directory, so the shipped policies live there as a
copy: every `.rego` file under `policies/` except the `*_test.rego` files, at the same relative
path. Files that no longer exist in `policies/` are removed from the copy. A unit test fails
when the copy is stale; run `python charts/tools/sync_policies.py` to refresh it.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "policies"
COPY = REPO / "charts" / "smictl" / "files" / "policies"


def shipped(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every non-test .rego file under root."""
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*.rego"))
        if not path.name.endswith("_test.rego")
    }


def sync() -> list[str]:
    """Make COPY match SOURCE; the relative paths written or removed."""
    wanted, present = shipped(SOURCE), shipped(COPY)
    changed = []
    for rel, data in wanted.items():
        if present.get(rel) != data:
            target = COPY / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            changed.append(rel)
    for rel in present.keys() - wanted.keys():
        (COPY / rel).unlink()
        changed.append(rel)
    return changed


def main() -> int:
    for rel in sync():
        print(f"synced {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

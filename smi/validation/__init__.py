"""Per-object hard checks (SPEC.md §6.4, DESIGN.md §3) over the hub form."""

"""SMI wire models per group and version, one unversioned hub per group, converters to and
from the hub. Depends on pydantic only (import-linter checks this)."""

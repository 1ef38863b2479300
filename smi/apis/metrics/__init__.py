"""SMI metrics group: wire models per version and the unversioned hub."""

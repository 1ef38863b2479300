"""SMI split group: wire models per version and the unversioned hub."""

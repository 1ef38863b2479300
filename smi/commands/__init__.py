"""The `smi` package's own subcommands of `smictl` (registered through entry points)."""

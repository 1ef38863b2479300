"""smictl: a zero-trust policy engine for Kubernetes service meshes that speaks SMI.

The `smi` package is the pure core: wire models, loading, validation, conversion, the compiler
and the Rego engine. Servers (`webhook`, `proxy`) and the conformance suite sit on top of it and
are never imported from here (import-linter checks this).
"""

__version__ = "0.1.0"

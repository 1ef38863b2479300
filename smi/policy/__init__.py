"""Rego policies: the embedded engine (regopy), the remote OPA client, admission input documents
and the admission chain that every entry point (CLI, webhook, conformance) calls."""

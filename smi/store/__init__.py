"""Resource stores behind one interface: local SQLite (embedded default) and Kubernetes."""

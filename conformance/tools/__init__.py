"""Tools that write the shipped scenario files (run `python -m conformance.tools.generate`)."""

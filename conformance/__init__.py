"""The SMI conformance suite: scenarios (YAML data), targets, runner and reports.

    conformance.model      the scenario format (pydantic, extra="forbid")
    conformance.catalog    finding, reading and selecting the shipped scenario files
    conformance.targets    inproc | webhook | proxy: where a scenario runs
    conformance.runner     steps in order, kuttl-style; results per step
    conformance.assertions what was expected vs what a target observed
    conformance.reports    JUnit XML, JSON, Markdown, self-contained HTML
    conformance.cli        `smictl conformance run|list`
    conformance.demo       the live demo (`make demo`)

Nothing imports this package (import-linter); it may import everything.
"""

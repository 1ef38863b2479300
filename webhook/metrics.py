"""Prometheus metrics of the control plane, correct under gunicorn's several worker processes.

Under gunicorn the config (`gunicorn.conf.py`) sets `PROMETHEUS_MULTIPROC_DIR` before any worker
imports prometheus_client; every worker then writes its samples to files there and `/metrics`
aggregates them with a fresh `MultiProcessCollector` per scrape (NOTES.md). Without that
variable (unit tests, `flask run`) the metrics live in a per-app registry.

Label values come from closed sets (operation, SMI kind or "other", decision), never from
request data, so the series count stays bounded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from smi.apis.registry import served

# The `kind` label's values: every kind smictl serves, and Pod (the injector); anything else
# is "other", so a client cannot grow the label set.
SMI_KINDS = frozenset({s.kind for s in served()} | {"Pod"})
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


@dataclass(frozen=True, slots=True)
class Metrics:
    registry: CollectorRegistry | None
    admission_requests: Counter
    admission_duration: Histogram
    policy_revision: Gauge
    certificates_issued: Counter
    certificate_expiry: Gauge
    conversions: Counter
    policy_reads: Counter
    review_callers_refused: Counter

    @classmethod
    def create(cls) -> Metrics:
        # Multiprocess mode: samples go to files, so no registry (and no duplicate-name errors
        # when tests build many apps in one process).
        registry = None if _multiprocess() else CollectorRegistry()
        return cls(
            registry=registry,
            admission_requests=Counter(
                "smictl_admission_requests_total",
                "Admission reviews answered, by operation, kind and decision.",
                ["operation", "kind", "decision"],
                registry=registry,
            ),
            admission_duration=Histogram(
                "smictl_admission_duration_seconds",
                "Time to answer one admission review (validate or mutate).",
                ["webhook"],
                buckets=DURATION_BUCKETS,
                registry=registry,
            ),
            policy_revision=Gauge(
                "smictl_policy_revision",
                "Revision of the MeshPolicy this control plane serves.",
                registry=registry,
                multiprocess_mode="livemax",
            ),
            certificates_issued=Counter(
                "smictl_certificates_issued_total",
                "Workload certificates signed, by result.",
                ["result"],
                registry=registry,
            ),
            certificate_expiry=Gauge(
                "smictl_certificate_expiry_timestamp_seconds",
                "When a certificate the control plane uses expires (Unix time).",
                ["certificate"],
                registry=registry,
                multiprocess_mode="livemin",
            ),
            conversions=Counter(
                "smictl_conversion_requests_total",
                "ConversionReview objects converted, by result.",
                ["result"],
                registry=registry,
            ),
            policy_reads=Counter(
                "smictl_policy_reads_total",
                "MeshPolicy requests (GET /mesh/v1/policy), by who made them: `workload` (a "
                "bootstrap or ServiceAccount token), `local-admin` (the admin token), "
                "`unauthenticated` (refused, 401) or `unavailable` (the token's TokenReview "
                "could not be made, 503).",
                ["result"],
                registry=registry,
            ),
            review_callers_refused=Counter(
                "smictl_review_callers_refused_total",
                "Calls of /validate or /mutate refused (401) because a client CA is "
                "configured and the caller's certificate was missing (`no-certificate`) or "
                "named no allowed client (`name`).",
                ["reason"],
                registry=registry,
            ),
        )

    def count_admission(self, *, operation: str, kind: str, decision: str) -> None:
        self.admission_requests.labels(
            operation=operation if operation in OPERATIONS else "other",
            kind=kind if kind in SMI_KINDS else "other",
            decision=decision,
        ).inc()

    def render(self) -> bytes:
        if self.registry is not None:
            return bytes(generate_latest(self.registry))
        scrape = CollectorRegistry()
        MultiProcessCollector(scrape)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(scrape))

"""Every manifest under ../shared/smi/examples (the SMI spec's own examples) and every manifest
shipped in examples/ is loaded and validated, file by file, with the exact codes expected.

The shared examples are doc snippets: most omit apiVersion. Each such file is checked twice: as
written (SMI1004), and with the apiVersion its `# note:` names injected as the first line, which
is where the real verdict on its content lies. Each file is validated alone, so references to
objects in other files are the SMI3001/SMI3009 warnings a lone file gets.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smi.compiler import validate
from smi.errors import Diagnostic
from smi.loading import load_paths, load_text

# As written. SMI1004: the snippet omits apiVersion; SMI1005: a fragment without kind;
# SMI1008: not an SMI or context object (skipped, a warning); SMI1002: the spec's
# APIResourceList contains a literal "..." elision; SMI1011: `apiVersion: v1alpha1` (doc typo);
# SMI2408: the draft's IdentityBinding sets podLabelSelector and serviceAccount, which the same
# draft says are mutually exclusive, and SMI2411: smictl skips its podLabelSelector; SMI2206:
# pathRegex without trailing $, / or .*; SMI2106: the spec's "self-referential" split lists its
# root as a backend.
PRE_PR237 = "specs-v1alpha4-headers-array-form-pre-pr237/"

AS_WRITTEN: dict[str, set[str]] = {
    "access-v1alpha1/01-httproutegroup-the-routes--metrics-everything.yaml": {"SMI1004"},
    "access-v1alpha1/02-traffictarget-path-specific.yaml": {"SMI1004"},
    "access-v1alpha1/03-httproutegroup-api-service-routes--api-metrics.yaml": {"SMI1004"},
    "access-v1alpha1/04-traffictarget-api-service-metrics.yaml": {"SMI1004"},
    "access-v1alpha1/05-traffictarget-api-service-api.yaml": {"SMI1004"},
    "access-v1alpha2/01-httproutegroup-the-routes--metrics-everything.yaml": {"SMI1004"},
    "access-v1alpha2/02-traffictarget-path-specific.yaml": {"SMI1004"},
    "access-v1alpha2/03-httproutegroup-api-service-routes--api-metrics.yaml": {"SMI1004"},
    "access-v1alpha2/04-traffictarget-api-service-metrics.yaml": {"SMI1004"},
    "access-v1alpha2/05-traffictarget-api-service-api.yaml": {"SMI1004"},
    "access-v1alpha3/01-tcproute-the-routes--ports-8080.yaml": {"SMI1004"},
    "access-v1alpha3/02-httproutegroup-the-routes--metrics-everything.yaml": {"SMI1004"},
    "access-v1alpha3/03-traffictarget-path-specific.yaml": {"SMI1004"},
    "access-v1alpha3/04-tcproute-api-service-port--ports-8080.yaml": {"SMI1004"},
    "access-v1alpha3/05-httproutegroup-api-service-routes--api-metrics.yaml": {"SMI1004"},
    "access-v1alpha3/06-traffictarget-api-service-metrics.yaml": {"SMI1004"},
    "access-v1alpha3/07-traffictarget-api-service-api.yaml": {"SMI1004"},
    "access-v1alpha3/08-tcproute-tcp-ports--ports-8301-8302-8300.yaml": {"SMI1004"},
    "access-v1alpha3/09-udproute-udp-ports--ports-8301-8302.yaml": {"SMI1004"},
    "access-v1alpha3/10-traffictarget-protocal-specific.yaml": {"SMI1004"},
    "access-v1alpha4-draft/01-identitybinding-service-a.yaml": {"SMI2408", "SMI2411"},
    "access-v1alpha4-draft/02-tcproute-the-routes--ports-8080.yaml": {"SMI1004"},
    "access-v1alpha4-draft/03-httproutegroup-the-routes--metrics-everything.yaml": {"SMI1004"},
    "access-v1alpha4-draft/04-traffictarget-path-specific.yaml": {"SMI1004"},
    "access-v1alpha4-draft/05-tcproute-api-service-port--ports-8080.yaml": {"SMI1004"},
    "access-v1alpha4-draft/06-httproutegroup-api-service-routes--api-metrics.yaml": {"SMI1004"},
    "access-v1alpha4-draft/07-traffictarget-api-service-metrics.yaml": {"SMI1004"},
    "access-v1alpha4-draft/08-traffictarget-api-service-api.yaml": {"SMI1004"},
    "access-v1alpha4-draft/09-tcproute-tcp-ports--ports-8301-8302-8300.yaml": {"SMI1004"},
    "access-v1alpha4-draft/10-udproute-udp-ports--ports-8301-8302.yaml": {"SMI1004"},
    "access-v1alpha4-draft/11-traffictarget-protocal-specific.yaml": {"SMI1004"},
    "metrics-v1alpha1/01-trafficmetrics.yaml": {"SMI1004"},
    "metrics-v1alpha1/02-fragment.yaml": {"SMI1004", "SMI1005"},
    "metrics-v1alpha1/03-fragment.yaml": {"SMI1004", "SMI1005"},
    "metrics-v1alpha1/04-fragment.yaml": {"SMI1004", "SMI1005"},
    "metrics-v1alpha1/05-trafficmetricslist.yaml": {"SMI1004"},
    "metrics-v1alpha1/06-trafficmetricslist.yaml": {"SMI1004"},
    "metrics-v1alpha1/07-trafficmetricslist.yaml": {"SMI1004"},
    "metrics-v1alpha1/08-apiservice-v1alpha1.metrics.smi-spec.io.yaml": {"SMI1008"},
    "metrics-v1alpha1/09-apiresourcelist.yaml": {"SMI1002", "SMI1008"},
    "metrics-v1alpha1/10-trafficmetrics.yaml": {"SMI1004"},
    "metrics-v1alpha1/11-role-traffic-metrics.yaml": {"SMI1008"},
    "metrics-v1alpha1/12-role-traffic-metrics.yaml": {"SMI1008"},
    "specs-v1alpha1/01-httproutegroup-the-routes--metrics-health.yaml": {"SMI2206"},
    "specs-v1alpha1/02-httproutegroup-the-routes--everything.yaml": {"SMI1011"},
    "specs-v1alpha1/03-tcproute-tcp-route--no-matches.yaml": set(),
    "specs-v1alpha2/01-httproutegroup-the-routes--metrics-health.yaml": {"SMI1004"},
    "specs-v1alpha2/02-httproutegroup-the-routes--everything.yaml": {"SMI1004"},
    "specs-v1alpha2/03-httproutegroup-the-routes--android-insiders.yaml": {"SMI1004"},
    "specs-v1alpha2/04-httproutegroup-the-routes--android-insiders-firefox-users.yaml": {"SMI1004"},
    "specs-v1alpha2/05-httproutegroup-the-routes--iphone-users.yaml": {"SMI1004"},
    "specs-v1alpha2/06-tcproute-tcp-route--no-matches.yaml": {"SMI1004"},
    "specs-v1alpha3/01-httproutegroup-the-routes--metrics-health.yaml": {"SMI1004"},
    "specs-v1alpha3/02-httproutegroup-the-routes--everything.yaml": {"SMI1004"},
    "specs-v1alpha3/03-httproutegroup-the-routes--android-insiders.yaml": {"SMI1004"},
    "specs-v1alpha3/04-httproutegroup-the-routes--android-insiders-firefox-users.yaml": {"SMI1004"},
    "specs-v1alpha3/05-httproutegroup-the-routes--iphone-users.yaml": {"SMI1004"},
    "specs-v1alpha3/06-tcproute-tcp-route--no-matches.yaml": {"SMI1004"},
    "specs-v1alpha4/01-httproutegroup-the-routes--metrics-health.yaml": {"SMI1004"},
    "specs-v1alpha4/02-httproutegroup-the-routes--everything.yaml": {"SMI1004"},
    "specs-v1alpha4/03-httproutegroup-the-routes--android-insiders.yaml": {"SMI1004"},
    "specs-v1alpha4/04-httproutegroup-the-routes--android-insiders-firefox-users.yaml": {"SMI1004"},
    "specs-v1alpha4/05-httproutegroup-the-routes--iphone-users.yaml": {"SMI1004"},
    "specs-v1alpha4/06-tcproute-the-routes--ports-3306-6446.yaml": {"SMI1004"},
    "specs-v1alpha4/07-tcproute-the-routes--ports-empty.yaml": {"SMI1004"},
    "specs-v1alpha4/08-udproute-the-routes--ports-989-990.yaml": {"SMI1004"},
    "specs-v1alpha4/09-udproute-the-routes--ports-empty.yaml": {"SMI1004"},
    PRE_PR237 + "01-httproutegroup-the-routes--android-insiders.yaml": {"SMI1004"},
    PRE_PR237 + "02-httproutegroup-the-routes--android-insiders-firefox-users.yaml": {"SMI1004"},
    PRE_PR237 + "03-httproutegroup-the-routes--iphone-users.yaml": {"SMI1004"},
    "specs-v1alpha5-draft/01-httproutegroup-the-routes--metrics-health.yaml": {"SMI1004"},
    "specs-v1alpha5-draft/02-httproutegroup-the-routes--everything.yaml": {"SMI1004"},
    "specs-v1alpha5-draft/03-httproutegroup-the-routes--android-insiders.yaml": {"SMI1004"},
    "specs-v1alpha5-draft/04-httproutegroup-the-routes--android-insiders-firefox-users.yaml": {
        "SMI1004"
    },
    "specs-v1alpha5-draft/05-httproutegroup-the-routes--iphone-users.yaml": {"SMI1004"},
    "specs-v1alpha5-draft/06-tcproute-the-routes--ports-3306-6446.yaml": {"SMI1004"},
    "specs-v1alpha5-draft/07-tcproute-the-routes--ports-empty.yaml": {"SMI1004"},
    "specs-v1alpha5-draft/08-udproute-the-routes--ports-989-990.yaml": {"SMI1004"},
    "specs-v1alpha5-draft/09-udproute-the-routes--ports-empty.yaml": {"SMI1004"},
    "split-v1alpha1/01-trafficsplit-my-weights.yaml": set(),
    "split-v1alpha1/02-service-birds-ports-valid.yaml": set(),
    "split-v1alpha1/03-service-blue-birds-ports-valid.yaml": set(),
    "split-v1alpha1/04-service-green-birds-ports-valid.yaml": set(),
    "split-v1alpha1/05-service-birds-ports-invalid.yaml": set(),
    "split-v1alpha1/06-service-blue-birds-ports-invalid.yaml": set(),
    "split-v1alpha1/07-service-green-birds-ports-invalid.yaml": set(),
    "split-v1alpha1/08-trafficsplit-foobar-rollout-step1.yaml": set(),
    "split-v1alpha1/09-trafficsplit-foobar-rollout-step2.yaml": set(),
    "split-v1alpha1/10-trafficsplit-foobar-rollout-step3.yaml": set(),
    "split-v1alpha1/11-trafficsplit-my-split-self-referential.yaml": {"SMI2106"},
    "split-v1alpha1/12-trafficsplit-my-canary.yaml": set(),
    "split-v1alpha2/01-trafficsplit-my-trafficsplit.yaml": set(),
    "split-v1alpha2/02-service-birds-ports-valid.yaml": set(),
    "split-v1alpha2/03-service-blue-birds-ports-valid.yaml": set(),
    "split-v1alpha2/04-service-green-birds-ports-valid.yaml": set(),
    "split-v1alpha2/05-service-birds-ports-invalid.yaml": set(),
    "split-v1alpha2/06-service-blue-birds-ports-invalid.yaml": set(),
    "split-v1alpha2/07-service-green-birds-ports-invalid.yaml": set(),
    "split-v1alpha2/08-trafficsplit-foobar-rollout-step1.yaml": set(),
    "split-v1alpha2/09-trafficsplit-foobar-rollout-step2.yaml": set(),
    "split-v1alpha2/10-trafficsplit-foobar-rollout-step3.yaml": set(),
    "split-v1alpha2/11-trafficsplit-my-split-self-referential.yaml": {"SMI2106"},
    "split-v1alpha2/12-trafficsplit-my-canary.yaml": set(),
    "split-v1alpha3/01-trafficsplit-canary.yaml": {"SMI1004"},
    "split-v1alpha3/02-trafficsplit-ab-test.yaml": {"SMI1004"},
    "split-v1alpha3/03-httproutegroup-ab-test--firefox-users.yaml": {"SMI1004"},
    "split-v1alpha3/04-service-birds-ports-valid.yaml": set(),
    "split-v1alpha3/05-service-blue-birds-ports-valid.yaml": set(),
    "split-v1alpha3/06-service-green-birds-ports-valid.yaml": set(),
    "split-v1alpha3/07-service-birds-ports-invalid.yaml": set(),
    "split-v1alpha3/08-service-blue-birds-ports-invalid.yaml": set(),
    "split-v1alpha3/09-service-green-birds-ports-invalid.yaml": set(),
    "split-v1alpha3/10-trafficsplit-foobar-rollout-step1.yaml": {"SMI1004"},
    "split-v1alpha3/11-trafficsplit-foobar-rollout-step2.yaml": {"SMI1004"},
    "split-v1alpha3/12-trafficsplit-foobar-rollout-step3.yaml": {"SMI1004"},
    "split-v1alpha3/13-trafficsplit-my-split-self-referential.yaml": {"SMI1004"},
    "split-v1alpha3/14-trafficsplit-my-canary.yaml": {"SMI1004"},
    "split-v1alpha4/01-trafficsplit-canary.yaml": {"SMI1004"},
    "split-v1alpha4/02-trafficsplit-ab-test.yaml": {"SMI1004"},
    "split-v1alpha4/03-httproutegroup-ab-test--firefox-users.yaml": {"SMI1004"},
    "split-v1alpha4/04-service-birds-ports-valid.yaml": set(),
    "split-v1alpha4/05-service-blue-birds-ports-valid.yaml": set(),
    "split-v1alpha4/06-service-green-birds-ports-valid.yaml": set(),
    "split-v1alpha4/07-service-birds-ports-invalid.yaml": set(),
    "split-v1alpha4/08-service-blue-birds-ports-invalid.yaml": set(),
    "split-v1alpha4/09-service-green-birds-ports-invalid.yaml": set(),
    "split-v1alpha4/10-trafficsplit-foobar-rollout-step1.yaml": {"SMI1004"},
    "split-v1alpha4/11-trafficsplit-foobar-rollout-step2.yaml": {"SMI1004"},
    "split-v1alpha4/12-trafficsplit-foobar-rollout-step3.yaml": {"SMI1004"},
    "split-v1alpha4/13-trafficsplit-my-split-self-referential.yaml": {"SMI1004"},
    "split-v1alpha4/14-trafficsplit-my-canary.yaml": {"SMI1004"},
    "split-v1alpha5-draft/01-trafficsplit-canary.yaml": {"SMI1004"},
    "split-v1alpha5-draft/02-trafficsplit-ab-test.yaml": {"SMI1004"},
    "split-v1alpha5-draft/03-httproutegroup-ab-test--firefox-users.yaml": {"SMI1004"},
    "split-v1alpha5-draft/04-service-birds-ports-valid.yaml": set(),
    "split-v1alpha5-draft/05-service-blue-birds-ports-valid.yaml": set(),
    "split-v1alpha5-draft/06-service-green-birds-ports-valid.yaml": set(),
    "split-v1alpha5-draft/07-service-birds-ports-invalid.yaml": set(),
    "split-v1alpha5-draft/08-service-blue-birds-ports-invalid.yaml": set(),
    "split-v1alpha5-draft/09-service-green-birds-ports-invalid.yaml": set(),
    "split-v1alpha5-draft/10-trafficsplit-foobar-rollout-step1.yaml": {"SMI1004"},
    "split-v1alpha5-draft/11-trafficsplit-foobar-rollout-step2.yaml": {"SMI1004"},
    "split-v1alpha5-draft/12-trafficsplit-foobar-rollout-step3.yaml": {"SMI1004"},
    "split-v1alpha5-draft/13-trafficsplit-my-split-self-referential.yaml": {"SMI1004"},
    "split-v1alpha5-draft/14-trafficsplit-my-canary.yaml": {"SMI1004"},
}

# With the apiVersion of the file's `# note:` injected. The header examples in both wire forms
# (map: specs-v1alpha2..4/03-05; list: the pre-PR-237 copies) are accepted; the split docs'
# flat HTTPRouteGroup under a v1alpha3+ apiVersion is SMI2005; v1alpha5 drafts are SMI1006.
WITH_IMPLIED_API_VERSION: dict[str, set[str]] = {
    "access-v1alpha1/01-httproutegroup-the-routes--metrics-everything.yaml": {"SMI2206"},
    "access-v1alpha1/02-traffictarget-path-specific.yaml": {"SMI3001"},
    "access-v1alpha1/03-httproutegroup-api-service-routes--api-metrics.yaml": {"SMI2206"},
    "access-v1alpha1/04-traffictarget-api-service-metrics.yaml": {"SMI3001"},
    "access-v1alpha1/05-traffictarget-api-service-api.yaml": {"SMI3001"},
    "access-v1alpha2/01-httproutegroup-the-routes--metrics-everything.yaml": {"SMI2206"},
    "access-v1alpha2/02-traffictarget-path-specific.yaml": {"SMI3001"},
    "access-v1alpha2/03-httproutegroup-api-service-routes--api-metrics.yaml": {"SMI2206"},
    "access-v1alpha2/04-traffictarget-api-service-metrics.yaml": {"SMI3001"},
    "access-v1alpha2/05-traffictarget-api-service-api.yaml": {"SMI3001"},
    "access-v1alpha3/01-tcproute-the-routes--ports-8080.yaml": set(),
    "access-v1alpha3/02-httproutegroup-the-routes--metrics-everything.yaml": {"SMI2206"},
    "access-v1alpha3/03-traffictarget-path-specific.yaml": {"SMI3001"},
    "access-v1alpha3/04-tcproute-api-service-port--ports-8080.yaml": set(),
    "access-v1alpha3/05-httproutegroup-api-service-routes--api-metrics.yaml": {"SMI2206"},
    "access-v1alpha3/06-traffictarget-api-service-metrics.yaml": {"SMI3001"},
    "access-v1alpha3/07-traffictarget-api-service-api.yaml": {"SMI3001"},
    "access-v1alpha3/08-tcproute-tcp-ports--ports-8301-8302-8300.yaml": set(),
    "access-v1alpha3/09-udproute-udp-ports--ports-8301-8302.yaml": set(),
    "access-v1alpha3/10-traffictarget-protocal-specific.yaml": {"SMI3001"},
    "access-v1alpha4-draft/02-tcproute-the-routes--ports-8080.yaml": set(),
    "access-v1alpha4-draft/03-httproutegroup-the-routes--metrics-everything.yaml": {"SMI2206"},
    "access-v1alpha4-draft/04-traffictarget-path-specific.yaml": {"SMI3001", "SMI3009"},
    "access-v1alpha4-draft/05-tcproute-api-service-port--ports-8080.yaml": set(),
    "access-v1alpha4-draft/06-httproutegroup-api-service-routes--api-metrics.yaml": {"SMI2206"},
    "access-v1alpha4-draft/07-traffictarget-api-service-metrics.yaml": {"SMI3001", "SMI3009"},
    "access-v1alpha4-draft/08-traffictarget-api-service-api.yaml": {"SMI3001", "SMI3009"},
    "access-v1alpha4-draft/09-tcproute-tcp-ports--ports-8301-8302-8300.yaml": set(),
    "access-v1alpha4-draft/10-udproute-udp-ports--ports-8301-8302.yaml": set(),
    "access-v1alpha4-draft/11-traffictarget-protocal-specific.yaml": {"SMI3001", "SMI3009"},
    "metrics-v1alpha1/01-trafficmetrics.yaml": set(),
    "metrics-v1alpha1/05-trafficmetricslist.yaml": set(),
    "metrics-v1alpha1/06-trafficmetricslist.yaml": set(),
    "metrics-v1alpha1/07-trafficmetricslist.yaml": set(),
    "metrics-v1alpha1/10-trafficmetrics.yaml": set(),
    "specs-v1alpha2/01-httproutegroup-the-routes--metrics-health.yaml": {"SMI2206"},
    "specs-v1alpha2/02-httproutegroup-the-routes--everything.yaml": set(),
    "specs-v1alpha2/03-httproutegroup-the-routes--android-insiders.yaml": set(),
    "specs-v1alpha2/04-httproutegroup-the-routes--android-insiders-firefox-users.yaml": set(),
    "specs-v1alpha2/05-httproutegroup-the-routes--iphone-users.yaml": set(),
    "specs-v1alpha2/06-tcproute-tcp-route--no-matches.yaml": set(),
    "specs-v1alpha3/01-httproutegroup-the-routes--metrics-health.yaml": {"SMI2206"},
    "specs-v1alpha3/02-httproutegroup-the-routes--everything.yaml": set(),
    "specs-v1alpha3/03-httproutegroup-the-routes--android-insiders.yaml": set(),
    "specs-v1alpha3/04-httproutegroup-the-routes--android-insiders-firefox-users.yaml": set(),
    "specs-v1alpha3/05-httproutegroup-the-routes--iphone-users.yaml": set(),
    "specs-v1alpha3/06-tcproute-tcp-route--no-matches.yaml": set(),
    "specs-v1alpha4/01-httproutegroup-the-routes--metrics-health.yaml": {"SMI2206"},
    "specs-v1alpha4/02-httproutegroup-the-routes--everything.yaml": set(),
    "specs-v1alpha4/03-httproutegroup-the-routes--android-insiders.yaml": set(),
    "specs-v1alpha4/04-httproutegroup-the-routes--android-insiders-firefox-users.yaml": set(),
    "specs-v1alpha4/05-httproutegroup-the-routes--iphone-users.yaml": set(),
    "specs-v1alpha4/06-tcproute-the-routes--ports-3306-6446.yaml": set(),
    "specs-v1alpha4/07-tcproute-the-routes--ports-empty.yaml": set(),
    "specs-v1alpha4/08-udproute-the-routes--ports-989-990.yaml": set(),
    "specs-v1alpha4/09-udproute-the-routes--ports-empty.yaml": set(),
    PRE_PR237 + "01-httproutegroup-the-routes--android-insiders.yaml": set(),
    PRE_PR237 + "02-httproutegroup-the-routes--android-insiders-firefox-users.yaml": set(),
    PRE_PR237 + "03-httproutegroup-the-routes--iphone-users.yaml": set(),
    "specs-v1alpha5-draft/01-httproutegroup-the-routes--metrics-health.yaml": {"SMI1006"},
    "specs-v1alpha5-draft/02-httproutegroup-the-routes--everything.yaml": {"SMI1006"},
    "specs-v1alpha5-draft/03-httproutegroup-the-routes--android-insiders.yaml": {"SMI1006"},
    "specs-v1alpha5-draft/04-httproutegroup-the-routes--android-insiders-firefox-users.yaml": {
        "SMI1006"
    },
    "specs-v1alpha5-draft/05-httproutegroup-the-routes--iphone-users.yaml": {"SMI1006"},
    "specs-v1alpha5-draft/06-tcproute-the-routes--ports-3306-6446.yaml": {"SMI1006"},
    "specs-v1alpha5-draft/07-tcproute-the-routes--ports-empty.yaml": {"SMI1006"},
    "specs-v1alpha5-draft/08-udproute-the-routes--ports-989-990.yaml": {"SMI1006"},
    "specs-v1alpha5-draft/09-udproute-the-routes--ports-empty.yaml": {"SMI1006"},
    "split-v1alpha3/01-trafficsplit-canary.yaml": set(),
    "split-v1alpha3/02-trafficsplit-ab-test.yaml": {"SMI3001"},
    "split-v1alpha3/03-httproutegroup-ab-test--firefox-users.yaml": {"SMI2005"},
    "split-v1alpha3/10-trafficsplit-foobar-rollout-step1.yaml": set(),
    "split-v1alpha3/11-trafficsplit-foobar-rollout-step2.yaml": set(),
    "split-v1alpha3/12-trafficsplit-foobar-rollout-step3.yaml": set(),
    "split-v1alpha3/13-trafficsplit-my-split-self-referential.yaml": {"SMI2106"},
    "split-v1alpha3/14-trafficsplit-my-canary.yaml": set(),
    "split-v1alpha4/01-trafficsplit-canary.yaml": set(),
    "split-v1alpha4/02-trafficsplit-ab-test.yaml": {"SMI3001"},
    "split-v1alpha4/03-httproutegroup-ab-test--firefox-users.yaml": {"SMI2005"},
    "split-v1alpha4/10-trafficsplit-foobar-rollout-step1.yaml": set(),
    "split-v1alpha4/11-trafficsplit-foobar-rollout-step2.yaml": set(),
    "split-v1alpha4/12-trafficsplit-foobar-rollout-step3.yaml": set(),
    "split-v1alpha4/13-trafficsplit-my-split-self-referential.yaml": {"SMI2106"},
    "split-v1alpha4/14-trafficsplit-my-canary.yaml": set(),
    "split-v1alpha5-draft/01-trafficsplit-canary.yaml": {"SMI1006"},
    "split-v1alpha5-draft/02-trafficsplit-ab-test.yaml": {"SMI1006"},
    "split-v1alpha5-draft/03-httproutegroup-ab-test--firefox-users.yaml": {"SMI2005"},
    "split-v1alpha5-draft/10-trafficsplit-foobar-rollout-step1.yaml": {"SMI1006"},
    "split-v1alpha5-draft/11-trafficsplit-foobar-rollout-step2.yaml": {"SMI1006"},
    "split-v1alpha5-draft/12-trafficsplit-foobar-rollout-step3.yaml": {"SMI1006"},
    "split-v1alpha5-draft/13-trafficsplit-my-split-self-referential.yaml": {"SMI1006"},
    "split-v1alpha5-draft/14-trafficsplit-my-canary.yaml": {"SMI1006"},
}

_IMPLIED = re.compile(r"^# note:.*?implied (?:apiVersion is )?(\S+)", re.M)
_EXPECT = re.compile(r"^# expect:(.*)$", re.M)


def check_file(path: Path) -> list[Diagnostic]:
    loaded = load_paths([str(path)])
    return loaded.diagnostics + validate(loaded.resources, loaded.context)


def check_with_implied(path: Path, relative: str) -> list[Diagnostic]:
    text = path.read_text()
    found = _IMPLIED.search(text)
    assert found is not None, f"{relative} has no implied apiVersion note"
    loaded = load_text(f"apiVersion: {found.group(1)}\n{text}", filename=relative)
    return loaded.diagnostics + validate(loaded.resources, loaded.context)


def all_examples(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.yaml"))


def test_the_table_covers_every_shared_example(smi_examples: Path) -> None:
    assert all_examples(smi_examples) == sorted(AS_WRITTEN)
    implied = [
        f for f in all_examples(smi_examples) if _IMPLIED.search((smi_examples / f).read_text())
    ]
    assert implied == sorted(WITH_IMPLIED_API_VERSION)


@pytest.mark.parametrize("relative", sorted(AS_WRITTEN))
def test_shared_example_as_written(smi_examples: Path, relative: str) -> None:
    diags = check_file(smi_examples / relative)
    assert {d.code for d in diags} == AS_WRITTEN[relative], [d.format() for d in diags]
    assert all(d.file == str(smi_examples / relative) for d in diags)


@pytest.mark.parametrize("relative", sorted(WITH_IMPLIED_API_VERSION))
def test_shared_example_with_its_implied_api_version(smi_examples: Path, relative: str) -> None:
    diags = check_with_implied(smi_examples / relative, relative)
    assert {d.code for d in diags} == WITH_IMPLIED_API_VERSION[relative], [
        d.format() for d in diags
    ]


def test_missing_api_version_is_reported_at_the_document(smi_examples: Path) -> None:
    path = smi_examples / "split-v1alpha4/01-trafficsplit-canary.yaml"
    [d] = check_file(path)
    assert (d.code, d.path, d.line, d.severity) == ("SMI1004", "apiVersion", 3, "error")


@pytest.mark.parametrize(
    "relative",
    [
        "specs-v1alpha4/03-httproutegroup-the-routes--android-insiders.yaml",
        PRE_PR237 + "01-httproutegroup-the-routes--android-insiders.yaml",
    ],
)
def test_both_header_wire_forms_load_to_the_same_hub_headers(
    smi_examples: Path, relative: str
) -> None:
    text = (smi_examples / relative).read_text()
    loaded = load_text("apiVersion: specs.smi-spec.io/v1alpha4\n" + text, filename=relative)
    assert loaded.diagnostics == []
    [group] = loaded.resources
    assert group.obj.matches[0].headers == (
        ("user-agent", ".*Android.*"),
        ("cookie", "^(.*?;)?(type=insider)(;.*)?$"),
    )


def test_flat_matches_in_a_v1alpha4_group_is_rejected_at_its_path(smi_examples: Path) -> None:
    relative = "split-v1alpha4/03-httproutegroup-ab-test--firefox-users.yaml"
    [d] = check_with_implied(smi_examples / relative, relative)
    assert (d.code, d.path, d.line, d.severity) == ("SMI2005", "matches", 8, "error")


def test_the_whole_shared_tree_loads_without_an_internal_error(smi_examples: Path) -> None:
    loaded = load_paths([str(smi_examples)])
    diags = loaded.diagnostics + validate(loaded.resources, loaded.context)
    assert len(loaded.files) == len(AS_WRITTEN)
    assert {d.code for d in diags} >= {"SMI1004", "SMI3003", "SMI3008"}
    assert all(d.file is not None for d in diags)


# --- the examples shipped in this repository ------------------------------------------------


def test_the_shipped_mesh_and_legacy_sets_are_valid_without_warnings(repo_root: Path) -> None:
    for directory in ("examples/mesh", "examples/legacy"):
        loaded = load_paths([str(repo_root / directory)])
        assert loaded.resources, directory
        assert loaded.diagnostics + validate(loaded.resources, loaded.context) == []


def broken_files() -> list[str]:
    root = Path(__file__).resolve().parents[3] / "examples" / "broken"
    return sorted(p.name for p in root.glob("*.yaml"))


@pytest.mark.parametrize("name", broken_files())
def test_each_shipped_broken_file_has_exactly_the_codes_it_names(
    repo_root: Path, name: str
) -> None:
    path = repo_root / "examples" / "broken" / name
    expected = set(_EXPECT.search(path.read_text()).group(1).split())  # type: ignore[union-attr]
    diags = check_file(path)
    assert {d.code for d in diags} == expected, [d.format() for d in diags]
    assert any(d.is_error for d in diags)
    assert all(d.line is not None for d in diags)

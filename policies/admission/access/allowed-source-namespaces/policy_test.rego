package smi.admission.access.allowed_source_namespaces_test

import data.smi.admission.access.allowed_source_namespaces as policy
import rego.v1

target(namespace, sources) := {
	"kind": "TrafficTarget",
	"metadata": {"name": "t", "namespace": namespace},
	"sources": [{"kind": "ServiceAccount", "name": n, "namespace": ns} | some [n, ns] in sources],
}

request := {"operation": "CREATE", "object": {"spec": {}}}

check(hub) := v if {
	r := request
	v := policy.violation with input.request as r with input.hub as hub
}

check_with(hub, allowed) := v if {
	r := request
	v := policy.violation with input.request as r with input.hub as hub
		with data.parameters.allowedSourceNamespaces as allowed
}

test_same_namespace_is_allowed if {
	count(check(target("shop", [["web", "shop"]]))) == 0
}

test_source_without_namespace_is_the_targets_namespace if {
	count(check(target("shop", [["web", ""]]))) == 0
}

test_other_namespace_is_denied_by_default if {
	v := check(target("shop", [["web", "shop"], ["scraper", "monitoring"]]))
	count(v) == 1
	some x in v
	x.path == "spec.sources[1].namespace"
	x.msg == "source monitoring/scraper is in namespace monitoring, which TrafficTargets in shop may not trust (allowed: shop)"
}

test_wildcard_entry_allows_for_every_namespace if {
	count(check_with(target("shop", [["scraper", "monitoring"]]), {"*": ["monitoring"]})) == 0
}

test_entry_for_one_namespace_does_not_leak_to_others if {
	allowed := {"payments": ["checkout"]}
	count(check_with(target("payments", [["api", "checkout"]]), allowed)) == 0
	count(check_with(target("shop", [["api", "checkout"]]), allowed)) == 1
}

test_flat_v1alpha1_layout_points_at_root_field if {
	r := {"operation": "CREATE", "object": {"sources": []}}
	v := policy.violation with input.request as r with input.hub as target("shop", [["x", "other"]])
	{x.path | some x in v} == {"sources[0].namespace"}
}

test_at_most_a_hundred_are_reported_one_by_one_and_the_rest_counted if {
	v := check(target("shop", [[sprintf("s%v", [i]), sprintf("ns%v", [i])] | some i in numbers.range(0, 104)]))
	count(v) == 101
	some x in v
	x.path == "spec.sources"
	x.msg == "5 more sources are in namespaces that TrafficTargets in shop may not trust"
}

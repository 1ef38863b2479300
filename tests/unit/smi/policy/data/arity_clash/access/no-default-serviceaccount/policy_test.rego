package smi.admission.access.no_default_serviceaccount_test

import data.smi.admission.access.no_default_serviceaccount as policy
import rego.v1

target(destination, sources) := {
	"kind": "TrafficTarget",
	"metadata": {"name": "t", "namespace": "shop"},
	"destination": {"kind": "ServiceAccount", "name": destination, "namespace": ""},
	"sources": [{"kind": "ServiceAccount", "name": n, "namespace": "shop"} | some n in sources],
}

paths(destination, sources) := {x.path | some x in v} if {
	request := {"operation": "CREATE", "object": {"spec": {}}}
	v := policy.violation with input.request as request with input.hub as target(destination, sources)
}

test_named_accounts_pass if {
	paths("api", ["web", "worker"]) == set()
}

test_default_source_is_reported if {
	paths("api", ["web", "default"]) == {"spec.sources[1].name"}
}

test_default_destination_is_reported_with_its_namespace if {
	request := {"operation": "CREATE", "object": {"spec": {}}}
	v := policy.violation with input.request as request with input.hub as target("default", ["web"])
	some x in v
	x.path == "spec.destination.name"
	startswith(x.msg, "the destination is the default ServiceAccount of namespace shop:")
}

test_flat_v1alpha1_layout_points_at_root_fields if {
	request := {"operation": "CREATE", "object": {"destination": {}}}
	v := policy.violation with input.request as request with input.hub as target("default", ["default"])
	{x.path | some x in v} == {"destination.name", "sources[0].name"}
}

package smi.admission.split.canary_step_test

import data.smi.admission.split.canary_step
import rego.v1

# Fixtures are functions or locals, never rules: regopy 1.5.2 reads `with x as <rule>` as
# undefined, and crashes on `with input as {...}` (see docs/policy-input.md).
split(weights) := {"backends": [{"service": s, "weightMilli": weights[s]} | some s in object.keys(weights)]}

request(operation, services) := {
	"operation": operation,
	"object": {"spec": {"backends": [{"service": s} | some s in services]}},
}

violations(operation, old, new) := v if {
	v := canary_step.violation with input.request as request(operation, ["v1", "v2"])
		with input.hub as split(new)
		with input.oldHub as old
}

test_small_step_is_allowed if {
	count(violations("UPDATE", split({"v1": 90000, "v2": 10000}), {"v1": 80000, "v2": 20000})) == 0
}

test_exactly_the_limit_is_allowed if {
	count(violations("UPDATE", split({"v1": 90000, "v2": 10000}), {"v1": 70000, "v2": 30000})) == 0
}

test_big_step_is_denied_for_each_backend if {
	v := violations("UPDATE", split({"v1": 90000, "v2": 10000}), {"v1": 50000, "v2": 50000})
	count(v) == 2
	some x in v
	x.msg == "backend v2 moves from 10% to 50% of the traffic in one update (40 points; at most 20 per update)"
	x.path == "spec.backends[1].weight"
}

test_relative_weights_not_absolute_numbers if {
	# 1:1 -> 2:2 doubles every weight but moves no traffic.
	count(violations("UPDATE", split({"v1": 1000, "v2": 1000}), {"v1": 2000, "v2": 2000})) == 0
}

test_new_backend_starts_from_zero if {
	v := violations("UPDATE", split({"v1": 100000}), {"v1": 70000, "v2": 30000})
	{x.path | some x in v} == {"spec.backends[0].weight", "spec.backends[1].weight"}
}

test_create_is_not_a_step if {
	count(violations("CREATE", null, {"v1": 0, "v2": 100000})) == 0
}

test_limit_comes_from_parameters if {
	v := canary_step.violation with input.request as request("UPDATE", ["v1", "v2"])
		with input.hub as split({"v1": 50000, "v2": 50000})
		with input.oldHub as split({"v1": 90000, "v2": 10000})
		with data.parameters.canaryMaxStep as 40
	count(v) == 0
}

test_all_zero_split_counts_as_zero_percent if {
	v := violations("UPDATE", split({"v1": 0, "v2": 0}), {"v1": 0, "v2": 100000})
	{x.path | some x in v} == {"spec.backends[1].weight"}
}

test_removed_backend_ends_at_zero if {
	v := canary_step.violation with input.request as request("UPDATE", ["v1"])
		with input.hub as split({"v1": 100000})
		with input.oldHub as split({"v1": 50000, "v2": 50000})
	some x in v
	x.msg == "backend v2 moves from 50% to 0% of the traffic in one update (50 points; at most 20 per update)"
	x.path == "spec.backends"
}

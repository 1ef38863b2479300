# METADATA
# title: Canary weights move in small steps
# description: >-
#   On an UPDATE of a TrafficSplit, no backend's share of the traffic may change by more
#   than N percentage points at once (data.parameters.canaryMaxStep, default 20). Shares come
#   from the hub form (weightMilli), so a v1alpha1 quantity and a v1alpha4 integer compare
#   correctly even when the client switched API versions. A backend that appears starts from
#   0%, one that disappears ends at 0%. A split whose weights sum to 0 sends no traffic (0%).
# custom:
#   code: SMI5101
#   enforcement: deny
#   kinds: [TrafficSplit]
package smi.admission.split.canary_step

import rego.v1

default max_step := 20

max_step := data.parameters.canaryMaxStep if is_number(data.parameters.canaryMaxStep)

total(split) := sum([b.weightMilli | some b in split.backends])

# A backend's share of the split's traffic, in percent (0 when the split sends nothing).
share(split, service) := (sum([b.weightMilli | some b in split.backends; b.service == service]) * 100) / total(split) if {
	total(split) > 0
}

default share(_, _) := 0

services contains b.service if some b in input.hub.backends

services contains b.service if some b in input.oldHub.backends

# Where to point a user: the backend's weight in the new object, or the list if it was removed.
default weight_path(_) := "spec.backends"

weight_path(service) := sprintf("spec.backends[%v].weight", [i]) if {
	some i, b in input.request.object.spec.backends
	b.service == service
}

violation contains {"msg": msg, "path": weight_path(service)} if {
	input.request.operation == "UPDATE"
	input.oldHub.backends
	some service in services
	before := share(input.oldHub, service)
	after := share(input.hub, service)
	step := abs(after - before)
	step > max_step
	msg := sprintf(
		"backend %s moves from %v%% to %v%% of the traffic in one update (%v points; at most %v per update)",
		[service, round(before), round(after), round(step), max_step],
	)
}

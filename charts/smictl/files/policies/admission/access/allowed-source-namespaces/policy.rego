# METADATA
# title: Sources come from allowed namespaces
# description: >-
#   A TrafficTarget may only name sources in its own namespace or in a namespace the
#   parameters allow for it: data.parameters.allowedSourceNamespaces maps a destination
#   namespace (or "*" for every namespace) to the source namespaces it may trust, e.g.
#   {"*": ["monitoring"], "payments": ["checkout"]}. A source without a namespace is in the
#   TrafficTarget's namespace (DESIGN.md section 3), so it always passes.
# custom:
#   code: SMI5102
#   enforcement: deny
#   kinds: [TrafficTarget]
package smi.admission.access.allowed_source_namespaces

import rego.v1

default allowed_map := {}

allowed_map := data.parameters.allowedSourceNamespaces if is_object(data.parameters.allowedSourceNamespaces)

allowed(namespace) := ({namespace} | {n | some n in object.get(allowed_map, "*", [])}) | {n | some n in object.get(allowed_map, namespace, [])}

# access v1alpha1 keeps its fields at the object root; later versions under `spec`.
# (A rule, evaluated once. As the condition of `field`, the object was looked at again for
# every violation, which made a review with many of them quadratic in time and memory.)
default prefix := ""

prefix := "spec." if input.request.object.spec

field(rest) := concat("", [prefix, rest])

# The indexes of the sources in namespaces the TrafficTarget's may not trust, in order.
untrusted := [i | s := input.hub.sources[i]; s.namespace != ""; not s.namespace in allowed(input.hub.metadata.namespace)]

# At most this many are reported one by one, the rest in one more violation: the engine's
# cost of a violation set grows with the square of its size (800 sources took a gigabyte).
max_reported := 100

violation contains {"msg": msg, "path": field(sprintf("sources[%v].namespace", [i]))} if {
	own := input.hub.metadata.namespace
	some k, i in untrusted
	k < max_reported
	source := input.hub.sources[i]
	namespace := source.namespace # (never empty: no namespace is the TrafficTarget's own)
	# concat, not sprintf: regopy 1.5.2's sprintf quotes strings that built-ins made.
	msg := concat("", [
		"source ", namespace, "/", source.name, " is in namespace ", namespace,
		", which TrafficTargets in ", own, " may not trust (allowed: ",
		concat(", ", sort(allowed(own))), ")",
	])
}

violation contains {"msg": msg, "path": field("sources")} if {
	count(untrusted) > max_reported
	msg := concat("", [
		format_int(count(untrusted) - max_reported, 10), " more sources are in namespaces that ",
		"TrafficTargets in ", input.hub.metadata.namespace, " may not trust",
	])
}

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
field(rest) := concat("", ["spec.", rest]) if input.request.object.spec

field(rest) := rest if not input.request.object.spec

violation contains {"msg": msg, "path": field(sprintf("sources[%v].namespace", [i]))} if {
	own := input.hub.metadata.namespace
	some i, source in input.hub.sources
	namespace := source.namespace
	namespace != "" # no namespace: the TrafficTarget's own, always allowed
	not namespace in allowed(own)
	# concat, not sprintf: regopy 1.5.2's sprintf quotes strings that built-ins made.
	msg := concat("", [
		"source ", namespace, "/", source.name, " is in namespace ", namespace,
		", which TrafficTargets in ", own, " may not trust (allowed: ",
		concat(", ", sort(allowed(own))), ")",
	])
}

# METADATA
# title: No access for or to the default ServiceAccount
# description: >-
#   Every pod that names no ServiceAccount runs as "default", so a TrafficTarget that names
#   the default ServiceAccount as a source or as its destination grants access to (or for) an
#   unknown set of workloads. Give workloads their own ServiceAccounts.
# custom:
#   code: SMI5106
#   enforcement: warn
#   kinds: [TrafficTarget]
package smi.admission.access.no_default_serviceaccount

import rego.v1

# access v1alpha1 keeps its fields at the object root; later versions under `spec`.
# (A rule, evaluated once. As the condition of `field`, the object was looked at again for
# every violation, which made a review with many of them quadratic in time and memory.)
default prefix := ""

prefix := "spec." if input.request.object.spec

field(rest) := concat("", [prefix, rest])

# Same name and arity as in the other access policies: rego-cpp 1.5.2 can fail to compile
# ("Unable to unify due to cycle") when packages define one function name with two arities.
namespace_of(subject, own) := subject.namespace if subject.namespace != ""

namespace_of(subject, own) := own if subject.namespace == ""

violation contains {"msg": msg, "path": field("destination.name")} if {
	input.hub.destination.kind == "ServiceAccount"
	input.hub.destination.name == "default"
	msg := concat("", [
		"the destination is the default ServiceAccount of namespace ",
		namespace_of(input.hub.destination, input.hub.metadata.namespace), ": every pod without its own ServiceAccount would accept this traffic",
	])
}

# The indexes of the sources that are a default ServiceAccount, in order.
default_sources := [i | s := input.hub.sources[i]; s.kind == "ServiceAccount"; s.name == "default"]

# At most this many are reported one by one, the rest in one more violation: the engine's
# cost of a violation set grows with the square of its size (800 sources took a gigabyte).
max_reported := 100

violation contains {"msg": msg, "path": field(sprintf("sources[%v].name", [i]))} if {
	some k, i in default_sources
	k < max_reported
	source := input.hub.sources[i]
	msg := concat("", [
		"source ", namespace_of(source, input.hub.metadata.namespace), "/default is the default ServiceAccount",
		": every pod of that namespace without its own ServiceAccount may call the destination",
	])
}

violation contains {"msg": msg, "path": field("sources")} if {
	count(default_sources) > max_reported
	msg := concat("", [
		format_int(count(default_sources) - max_reported, 10),
		" more sources are the default ServiceAccount of their namespace",
	])
}

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
field(rest) := concat("", ["spec.", rest]) if input.request.object.spec

field(rest) := rest if not input.request.object.spec

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

violation contains {"msg": msg, "path": field(sprintf("sources[%v].name", [i]))} if {
	some i, source in input.hub.sources
	source.kind == "ServiceAccount"
	source.name == "default"
	msg := concat("", [
		"source ", namespace_of(source, input.hub.metadata.namespace), "/default is the default ServiceAccount",
		": every pod of that namespace without its own ServiceAccount may call the destination",
	])
}

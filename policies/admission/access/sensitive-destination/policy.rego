# METADATA
# title: No whole-namespace access to sensitive destinations
# description: >-
#   A TrafficTarget whose destination is sensitive must not let every workload of a namespace
#   in. A destination is sensitive when its ServiceAccount, its IdentityBinding (or that
#   binding's ServiceAccount) or its Namespace carries the label smictl.io/sensitive=true (the
#   key is data.parameters.sensitiveLabel). A source covers a whole namespace when it is an
#   IdentityBinding whose podLabelSelector selects every pod, or when the sources name every
#   ServiceAccount known in a namespace that has at least two. Objects are looked up in
#   input.inventory, so the verdict depends on what else is known.
# custom:
#   code: SMI5104
#   enforcement: deny
#   kinds: [TrafficTarget]
#   inventory: [ServiceAccount, IdentityBinding, Namespace]
package smi.admission.access.sensitive_destination

import rego.v1

default label := "smictl.io/sensitive"

label := data.parameters.sensitiveLabel if is_string(data.parameters.sensitiveLabel)

# Same name and arity as in the other access policies: rego-cpp 1.5.2 can fail to compile
# ("Unable to unify due to cycle") when packages define one function name with two arities.
namespace_of(subject, own) := subject.namespace if subject.namespace != ""

namespace_of(subject, own) := own if subject.namespace == ""

marked(obj) if obj.metadata.labels[label] == "true"

destination := input.hub.destination

dest_ns := namespace_of(destination, input.hub.metadata.namespace)

# Why the destination is sensitive (several reasons may hold).
reasons contains concat("", ["namespace ", dest_ns, " is labelled ", label, "=true"]) if {
	marked(input.inventory.Namespace[""][dest_ns])
}

reasons contains concat("", ["ServiceAccount ", dest_ns, "/", destination.name, " is labelled ", label, "=true"]) if {
	destination.kind == "ServiceAccount"
	marked(input.inventory.ServiceAccount[dest_ns][destination.name])
}

reasons contains concat("", ["IdentityBinding ", dest_ns, "/", destination.name, " is labelled ", label, "=true"]) if {
	destination.kind == "IdentityBinding"
	marked(input.inventory.IdentityBinding[dest_ns][destination.name])
}

reasons contains concat("", ["ServiceAccount ", dest_ns, "/", account, " is labelled ", label, "=true"]) if {
	destination.kind == "IdentityBinding"
	account := input.inventory.IdentityBinding[dest_ns][destination.name].schemes.serviceAccount
	marked(input.inventory.ServiceAccount[dest_ns][account])
}

empty(x) if x == null

empty(x) if count(x) == 0

selects_every_pod(selector) if {
	is_object(selector)
	empty(object.get(selector, "matchLabels", null))
	empty(object.get(selector, "matchExpressions", null))
}

# [index of the source to point at, why it covers a whole namespace]
whole_namespace contains [i, why] if {
	some i, source in input.hub.sources
	source.kind == "IdentityBinding"
	ns := namespace_of(source, input.hub.metadata.namespace)
	selects_every_pod(input.inventory.IdentityBinding[ns][source.name].schemes.podLabelSelector)
	why := concat("", ["IdentityBinding ", ns, "/", source.name, " selects every pod of namespace ", ns])
}

whole_namespace contains [i, why] if {
	some ns, accounts in input.inventory.ServiceAccount
	count(accounts) >= 2
	named := {s.name | some s in input.hub.sources; s.kind == "ServiceAccount"; namespace_of(s, input.hub.metadata.namespace) == ns}
	count(object.keys(accounts) - named) == 0
	i := min({j | some j; s := input.hub.sources[j]; namespace_of(s, input.hub.metadata.namespace) == ns})
	why := concat("", ["the sources name all ", format_int(count(accounts), 10), " ServiceAccounts of namespace ", ns])
}

# access v1alpha1 keeps its fields at the object root; later versions under `spec`.
# (A rule, evaluated once. As the condition of `field`, the object was looked at again for
# every violation, which made a review with many of them quadratic in time and memory.)
default prefix := ""

prefix := "spec." if input.request.object.spec

field(rest) := concat("", [prefix, rest])

violation contains {"msg": msg, "path": field(sprintf("sources[%v]", [i]))} if {
	count(reasons) > 0
	some [i, why] in whole_namespace
	msg := concat("", [
		why, ", but the destination ", dest_ns, "/", destination.name, " is sensitive (",
		concat("; ", sort(reasons)), "): name the ServiceAccounts that need access",
	])
}

package smi.admission.access.sensitive_destination_test

import data.smi.admission.access.sensitive_destination as policy
import rego.v1

sa(labels) := {"kind": "ServiceAccount", "metadata": {"labels": labels}}

traffic_target(sources) := {
	"kind": "TrafficTarget",
	"metadata": {"name": "to-vault", "namespace": "secrets"},
	"destination": {"kind": "ServiceAccount", "name": "vault", "namespace": "secrets"},
	"sources": [{"kind": kind, "name": name, "namespace": ns} | some [kind, name, ns] in sources],
}

# Namespace "apps" has two ServiceAccounts; "secrets" holds the (sensitive) vault.
inventory(vault_labels) := {
	"ServiceAccount": {
		"apps": {"web": sa({}), "worker": sa({})},
		"secrets": {"vault": sa(vault_labels)},
	},
	"IdentityBinding": {"apps": {
		"all-pods": {"schemes": {"podLabelSelector": {"matchLabels": {}}}},
		"web-pods": {"schemes": {"podLabelSelector": {"matchLabels": {"app": "web"}}}},
	}},
	"Namespace": {"": {"apps": {"metadata": {"labels": {}}}}},
}

violations_for(sources, vault_labels) := v if {
	request := {"operation": "CREATE", "object": {"spec": {}}}
	v := policy.violation with input.request as request
		with input.hub as traffic_target(sources)
		with input.inventory as inventory(vault_labels)
}

sensitive := {"smictl.io/sensitive": "true"}

test_every_account_of_a_namespace_to_sensitive_destination_is_denied if {
	v := violations_for([["ServiceAccount", "web", "apps"], ["ServiceAccount", "worker", "apps"]], sensitive)
	count(v) == 1
	some x in v
	x.path == "spec.sources[0]"
	x.msg == "the sources name all 2 ServiceAccounts of namespace apps, but the destination secrets/vault is sensitive (ServiceAccount secrets/vault is labelled smictl.io/sensitive=true): name the ServiceAccounts that need access"
}

test_some_accounts_of_a_namespace_are_allowed if {
	s := sensitive
	count(violations_for([["ServiceAccount", "web", "apps"]], s)) == 0
}

test_whole_namespace_to_ordinary_destination_is_allowed if {
	count(violations_for([["ServiceAccount", "web", "apps"], ["ServiceAccount", "worker", "apps"]], {})) == 0
}

test_identity_binding_selecting_every_pod_is_denied if {
	v := violations_for([["ServiceAccount", "web", "apps"], ["IdentityBinding", "all-pods", "apps"]], sensitive)
	{x.path | some x in v} == {"spec.sources[1]"}
}

test_identity_binding_with_a_selector_is_allowed if {
	s := sensitive
	count(violations_for([["IdentityBinding", "web-pods", "apps"]], s)) == 0
}

test_sensitive_namespace_label_counts if {
	request := {"operation": "CREATE", "object": {"spec": {}}}
	inv := object.union(inventory({}), {"Namespace": {"": {"secrets": {"metadata": {"labels": sensitive}}}}})
	v := policy.violation with input.request as request
		with input.hub as traffic_target([["IdentityBinding", "all-pods", "apps"]])
		with input.inventory as inv
	some x in v
	contains(x.msg, "namespace secrets is labelled smictl.io/sensitive=true")
}

test_label_key_comes_from_parameters if {
	request := {"operation": "CREATE", "object": {"spec": {}}}
	v := policy.violation with input.request as request
		with input.hub as traffic_target([["IdentityBinding", "all-pods", "apps"]])
		with input.inventory as inventory({"acme.io/pci": "true"})
		with data.parameters.sensitiveLabel as "acme.io/pci"
	count(v) == 1
}

test_unknown_objects_are_not_guessed if {
	request := {"operation": "CREATE", "object": {"spec": {}}}
	v := policy.violation with input.request as request
		with input.hub as traffic_target([["IdentityBinding", "all-pods", "apps"]])
		with input.inventory as {}
	count(v) == 0
}

binding_target(source_namespace) := {
	"kind": "TrafficTarget",
	"metadata": {"name": "to-vault", "namespace": "apps"},
	"destination": {"kind": "IdentityBinding", "name": "vault-pods", "namespace": ""},
	"sources": [
		{"kind": "ServiceAccount", "name": "web", "namespace": source_namespace},
		{"kind": "ServiceAccount", "name": "worker", "namespace": source_namespace},
	],
}

binding_violations(binding, accounts) := v if {
	request := {"operation": "CREATE", "object": {"spec": {}}}
	inv := {
		"ServiceAccount": {"apps": accounts},
		"IdentityBinding": {"apps": {"vault-pods": binding}},
	}
	v := policy.violation with input.request as request
		with input.hub as binding_target("")
		with input.inventory as inv
}

test_labelled_identity_binding_destination_is_sensitive if {
	binding := {"metadata": {"labels": sensitive}, "schemes": {"serviceAccount": null}}
	v := binding_violations(binding, {"web": sa({}), "worker": sa({})})
	some x in v
	contains(x.msg, "(IdentityBinding apps/vault-pods is labelled smictl.io/sensitive=true)")
	x.path == "spec.sources[0]"
}

test_identity_binding_destination_inherits_its_accounts_label if {
	binding := {"metadata": {"labels": {}}, "schemes": {"serviceAccount": "worker"}}
	v := binding_violations(binding, {"web": sa({}), "worker": sa(sensitive)})
	some x in v
	contains(x.msg, "(ServiceAccount apps/worker is labelled smictl.io/sensitive=true)")
}

test_plain_identity_binding_destination_is_not_sensitive if {
	binding := {"metadata": {"labels": {}}, "schemes": {"serviceAccount": "worker"}}
	count(binding_violations(binding, {"web": sa({}), "worker": sa({})})) == 0
}

test_flat_v1alpha1_layout_points_at_root_sources if {
	request := {"operation": "CREATE", "object": {"sources": []}}
	v := policy.violation with input.request as request
		with input.hub as traffic_target([["IdentityBinding", "all-pods", "apps"]])
		with input.inventory as inventory(sensitive)
	{x.path | some x in v} == {"sources[0]"}
}

package smi.admission.meta.owner_label_test

import data.smi.admission.meta.owner_label as policy
import rego.v1

hub(labels) := {"kind": "TrafficSplit", "metadata": {"name": "canary", "namespace": "shop", "labels": labels}}

messages(labels) := {x.msg | some x in v} if {
	v := policy.violation with input.hub as hub(labels)
}

test_owner_label_passes if {
	messages({"owner": "team-shop"}) == set()
}

test_missing_owner_is_reported if {
	messages({"app": "shop"}) == {"TrafficSplit canary has no owner label"}
}

test_blank_owner_is_reported if {
	messages({"owner": "  "}) == {"TrafficSplit canary has an empty owner label"}
}

test_label_key_comes_from_parameters if {
	v := policy.violation with input.hub as hub({"owner": "x"}) with data.parameters.ownerLabel as "acme.io/team"
	{x.msg | some x in v} == {"TrafficSplit canary has no acme.io/team label"}
}

test_delete_has_no_object_to_check if {
	count(policy.violation) == 0 with input.hub as null
}

# METADATA
# title: Every SMI object names its owner
# description: >-
#   Access and traffic policy needs someone to ask. Every SMI object carries an owner label
#   (key "owner", or data.parameters.ownerLabel) with a non-empty value. Shipped as a warning;
#   copy the policy with enforcement deny to make it a gate.
# custom:
#   code: SMI5105
#   enforcement: warn
package smi.admission.meta.owner_label

import rego.v1

default key := "owner"

key := data.parameters.ownerLabel if is_string(data.parameters.ownerLabel)

owner := trim_space(input.hub.metadata.labels[key])

violation contains {"msg": msg, "path": "metadata.labels"} if {
	input.hub != null
	not owner
	msg := concat("", [input.hub.kind, " ", input.hub.metadata.name, " has no ", key, " label"])
}

violation contains {"msg": msg, "path": "metadata.labels"} if {
	owner == ""
	msg := concat("", [input.hub.kind, " ", input.hub.metadata.name, " has an empty ", key, " label"])
}

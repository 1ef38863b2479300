# METADATA
# title: pathRegex is end-anchored
# description: >-
#   An HTTPRouteGroup's pathRegex is matched against the request path anchored at the start
#   only (SMI spec, DESIGN.md section 3), so "/api" also allows "/apiary" and "/api-admin".
#   Built-in validation only warns about this (SMI2206); this policy refuses it. A regex must
#   end with "$" (exactly this), "/" (this directory) or ".*" (anything below, on purpose).
# custom:
#   code: SMI5103
#   enforcement: deny
#   kinds: [HTTPRouteGroup]
package smi.admission.specs.path_regex_anchored

import rego.v1

anchored(regex) if endswith(regex, "$")

anchored(regex) if endswith(regex, "/")

anchored(regex) if endswith(regex, ".*")

# specs v1alpha1/v1alpha2 keep `matches` at the object root; later versions under `spec`.
field(rest) := concat("", ["spec.", rest]) if input.request.object.spec

field(rest) := rest if not input.request.object.spec

violation contains {"msg": msg, "path": field(sprintf("matches[%v].pathRegex", [i]))} if {
	some i, match in input.hub.matches
	regex := match.pathRegex
	is_string(regex)
	not anchored(regex)
	msg := concat("", [
		"match ", match.name, ": pathRegex ", regex,
		" is anchored at the start only, so it also allows longer paths (", regex,
		"x); end it with $, / or .*",
	])
}

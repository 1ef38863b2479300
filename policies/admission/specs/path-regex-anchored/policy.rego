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
# (A rule, evaluated once. As the condition of `field`, the object was looked at again for
# every violation.)
default prefix := ""

prefix := "spec." if input.request.object.spec

field(rest) := concat("", [prefix, rest])

# The indexes of the offending matches, in order.
offending := [i | m := input.hub.matches[i]; is_string(m.pathRegex); not anchored(m.pathRegex)]

# At most this many are reported one by one, the rest in one more violation: the engine's
# cost of a violation set grows with the square of its size (a review with 2,000 offending
# matches took gigabytes), and a reader does not need the 101st.
max_reported := 100

violation contains {"msg": msg, "path": field(sprintf("matches[%v].pathRegex", [i]))} if {
	some k, i in offending
	k < max_reported
	match := input.hub.matches[i]
	regex := match.pathRegex
	msg := concat("", [
		"match ", match.name, ": pathRegex ", regex,
		" is anchored at the start only, so it also allows longer paths (", regex,
		"x); end it with $, / or .*",
	])
}

violation contains {"msg": msg, "path": field("matches")} if {
	count(offending) > max_reported
	msg := sprintf("%v more matches have a pathRegex anchored at the start only", [count(offending) - max_reported])
}

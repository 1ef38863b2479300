# METADATA
# title: pathRegex is end-anchored
# description: >-
#   An HTTPRouteGroup's pathRegex is matched against the request path anchored at the start
#   only (SMI spec, DESIGN.md section 3), so "/api" also allows "/apiary" and "/api-admin".
#   Admission warns about it in place of the built-in check SMI2206 (`replaces`, so one
#   warning per field): the SMI spec's own examples write such regexes. Copy this policy with
#   `enforcement: deny` to refuse them. A regex must end with "$" (exactly this), "/" (this
#   directory) or ".*" (anything below, on purpose).
# custom:
#   code: SMI5103
#   enforcement: warn
#   kinds: [HTTPRouteGroup]
#   replaces: [SMI2206]
package smi.admission.specs.path_regex_anchored

import rego.v1

# Whether the character `n` from the end of `r` is escaped: the text before it ends in an odd
# number of backslashes (`/api\$` ends with a literal dollar, so it is anchored nowhere).
# A backslash is one character in OPA and two in rego-cpp, which keeps strings in their
# escaped JSON spelling (smi.policy escapes input strings to match), so the pattern is chosen
# by that width. A regex, not `trim_right`: rego-cpp reads the string given to `trim_right`
# as an escape sequence and fails on `\x41` in it (the whole policy's evaluation failed for
# `/a\x41$`).
backslash_width := count("\\")

odd_backslashes := `(?:^|[^\\])\\(?:\\\\)*$` if backslash_width == 1

odd_backslashes := `(?:^|[^\\])\\\\(?:\\\\\\\\)*$` if backslash_width == 2

escaped_before(r, n) if regex.match(odd_backslashes, substring(r, 0, count(r) - n))

anchored(regex) if {
	endswith(regex, "$")
	not escaped_before(regex, 1)
}

anchored(regex) if endswith(regex, "/")

anchored(regex) if {
	endswith(regex, ".*")
	not escaped_before(regex, 2)
}

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

# A longer path the regex allows, shown only for a literal path (letters, digits and
# / _ ~ % . -): the path plus "-admin" (a sibling path, the danger), checked against the regex as the proxy matches it (at
# the start). Other regexes get no example rather than a made-up one that is no path, or that
# the regex does not match.
example(r) := ex if {
	regex.match(`^/[A-Za-z0-9/_~%.-]*$`, r)
	ex := concat("", [r, "-admin"])
	regex.match(concat("", ["^(?:", r, ")"]), ex)
}

longer(r) := concat("", ["longer paths (", example(r), ")"])

longer(r) := "longer paths" if not example(r)

violation contains {"msg": msg, "path": field(sprintf("matches[%v].pathRegex", [i]))} if {
	some k, i in offending
	k < max_reported
	match := input.hub.matches[i]
	msg := message(match)
}

# An empty pathRegex is no prefix: it matches every path, as an absent one does.
message(match) := concat("", [
	"match ", match.name, ": '' matches every path, as if pathRegex were absent; remove it, ",
	"or write .* to say so",
]) if match.pathRegex == ""

message(match) := concat("", [
	"match ", match.name, ": ", match.pathRegex, " also matches ",
	longer(match.pathRegex), "; end it with $, / or .*",
]) if match.pathRegex != ""

violation contains {"msg": msg, "path": field("matches")} if {
	count(offending) > max_reported
	msg := sprintf("%v more matches have a pathRegex anchored at the start only", [count(offending) - max_reported])
}

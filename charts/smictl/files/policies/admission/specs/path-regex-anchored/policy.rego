# METADATA
# title: pathRegex is end-anchored
# description: >-
#   An HTTPRouteGroup's pathRegex is matched against the request path anchored at the start
#   only (SMI spec, DESIGN.md section 3), so "/api" also allows "/apiary" and "/api-admin".
#   Admission warns about it in place of the built-in check SMI2206 (`replaces`, so one
#   warning per field): the SMI spec's own examples write such regexes. Copy this policy with
#   `enforcement: deny` to refuse them. The rule is SMI2206's, for every regex: each
#   alternative (split at a "|" outside groups and classes) must end. It ends when an end
#   anchor, not repeated, is anywhere in it ("$" unescaped outside a class, or "\z"; also a
#   group, not repeated, whose alternatives all have one: "(/a|/b)$", "/a(?:$|/x$)"), or
#   when its last part is a "/" that is not repeated (this directory; "\/" too), ".*"
#   exactly or ".*?" (anything below, on purpose: the same paths, as a path is matched at its
#   start) or a group, not repeated, whose alternatives all end ("/a(?:$|/)"). So "/a|/b$"
#   ends only "/b"; "\$", "[$]", "\.*", "/?", ".+" and an empty alternative end nothing.
#   Groups nested more than 64 deep: the regex's last characters.
# custom:
#   code: SMI5103
#   enforcement: warn
#   kinds: [HTTPRouteGroup]
#   replaces: [SMI2206]
package smi.admission.specs.path_regex_anchored

import rego.v1

# --- Where a regex ends, as SMI2206 reads it (smi/validation/regex.py: end_anchored) -----------
#
# Rego has no loops: the regex is cut into tokens (one regex.find_n), each token becomes one
# letter of a `shape` (`/a(?:$|/)` is `/x($|/)`), and groups are folded into one letter each,
# innermost first, by plain regex replacements; what is left is read by one regex.
#
# Strings are seen as the engine keeps them: one character each in OPA, but in rego-cpp
# (regopy, the embedded engine) in their escaped JSON spelling, which smi.policy also gives
# input strings: a backslash is `\\` there, a quote `\"`, a line break `\n`. Regexes and
# `substring` work on that spelling, so the lexer is built for the width of a backslash
# (`count("\\")`: 1 or 2), and its tokens are whole characters in either engine: a token
# equals the Rego literal that spells it ("\\z" is the two characters \z in both). rego-cpp
# reads `\x` in a pattern as a hex escape even after an escaped backslash: `[x]` below.
backslash_width := count("\\")

# A token: \Q...\E, an escape (\x{41} \p{Greek} \pL \x41 \z \/ \$ ...), a class [...], a
# group's opening ( (?: (?i: (?P<n> ), flags (?i), a repetition (* +? {2,3}) or one character.
# Where B is a backslash, C one character and N one that is neither `]` nor a backslash
# (`\\`, `[\s\S]`, `[^\]\\]` in OPA; in rego-cpp `\\\\`, `(?:\\(?:u[0-9a-fA-F]{4}|[\s\S])|[^\\])`
# and `(?:\\(?:u[0-9a-fA-F]{4}|[^\\])|[^\\\]])`), it is
#   BQC*?(?:BE|$) | B[xpP]\{[^}]*\} | B[pP]C | B[x]CC | BC | \[\^?\]?(?:\[:C*?:\]|BC|N)*\]
#   | \(\?P?<[^>]*> | \(\?[a-zA-Z-]*[:)] | \( | (?:[*+?]|\{[0-9]+(?:,[0-9]*)?\})\?? | C
# written out, and one rule picks (regopy compiles again what a rule reaches for every `with`
# in a test: built with concat, or as a rule with two conditional values, the tests of this
# policy took gigabytes to compile; see also `inner8` and `text_ending_re`).
token_re := choices[backslash_width - 1] if {
	choices := [
		`\\Q[\s\S]*?(?:\\E|$)|\\[xpP]\{[^}]*\}|\\[pP][\s\S]|\\[x][\s\S][\s\S]|\\[\s\S]|\[\^?\]?(?:\[:[\s\S]*?:\]|\\[\s\S]|[^\]\\])*\]|\(\?P?<[^>]*>|\(\?[a-zA-Z-]*[:)]|\(|(?:[*+?]|\{[0-9]+(?:,[0-9]*)?\})\??|[\s\S]`,
		`\\\\Q(?:\\(?:u[0-9a-fA-F]{4}|[\s\S])|[^\\])*?(?:\\\\E|$)|\\\\[xpP]\{[^}]*\}|\\\\[pP](?:\\(?:u[0-9a-fA-F]{4}|[\s\S])|[^\\])|\\\\[x](?:\\(?:u[0-9a-fA-F]{4}|[\s\S])|[^\\])(?:\\(?:u[0-9a-fA-F]{4}|[\s\S])|[^\\])|\\\\(?:\\(?:u[0-9a-fA-F]{4}|[\s\S])|[^\\])|\[\^?\]?(?:\[:(?:\\(?:u[0-9a-fA-F]{4}|[\s\S])|[^\\])*?:\]|\\\\(?:\\(?:u[0-9a-fA-F]{4}|[\s\S])|[^\\])|(?:\\(?:u[0-9a-fA-F]{4}|[^\\])|[^\\\]]))*\]|\(\?P?<[^>]*>|\(\?[a-zA-Z-]*[:)]|\(|(?:[*+?]|\{[0-9]+(?:,[0-9]*)?\})\??|(?:\\(?:u[0-9a-fA-F]{4}|[\s\S])|[^\\])`,
	]
}

# Each token as one letter of a `shape` the rest reads with plain regexes: `(` a group, `)`,
# `|`, `*` (`*` or `*?`: after `.`, every longer path) and `+` (any other: `+`, `?`, `{2}`),
# `$` an end anchor ($, \z), `/` (also \/ and a quote ending in /), `.`, and `x` anything else
# that is a part (a character, a class, ^, \b). Flags (?i) are no part: no letter, nor has a
# repetition of them. A repetition after `(`, `|` or at the start repeats nothing: its
# characters are text there; one followed by another is replaced by it (`.*\Q\E*`).
letter(tokens, i) := l if {
	l := fixed_letter[tokens[i]]
} else := "x" if {
	count(tokens[i]) == 1 # (most tokens: one character that is no syntax)
	not tokens[i] in {"*", "+", "?", "("}
} else := "" if {
	flags(tokens[i])
} else := "" if {
	regex.match(`^(?:[*+?]|\{[0-9]+(?:,[0-9]*)?\})\??$`, tokens[i])
	flags(tokens[i - 1])
} else := "" if {
	regex.match(`^(?:[*+?]|\{[0-9]+(?:,[0-9]*)?\})\??$`, tokens[i])
	regex.match(`^(?:[*+?]|\{[0-9]+(?:,[0-9]*)?\})\??$`, tokens[i + 1])
	repeats(tokens, i)
} else := "*" if {
	tokens[i] in {"*", "*?"}
	repeats(tokens, i)
} else := "+" if {
	regex.match(`^(?:[*+?]|\{[0-9]+(?:,[0-9]*)?\})\??$`, tokens[i])
	repeats(tokens, i)
} else := "(" if {
	startswith(tokens[i], "(")
} else := "/" if {
	slash(tokens[i])
} else := "x"

fixed_letter := {
	")": ")", "|": "|", "$": "$", "/": "/", ".": ".",
	"\\z": "$", "\\Z": "$", "\\/": "/",
}

flags(token) if {
	startswith(token, "(?")
	endswith(token, ")")
}

repeats(tokens, i) if {
	i > 0
	not starts_alternative(tokens[i - 1])
}

starts_alternative(token) if token == "|"

starts_alternative(token) if {
	startswith(token, "(")
	not endswith(token, ")")
}

slash(token) if {
	startswith(token, "\\Q")
	endswith(token, "/")
}

slash(token) if {
	startswith(token, "\\Q")
	endswith(token, "/\\E")
}

# (`letter` is called only for the tokens that need it: a call costs regopy about 60 µs.)
# Empty quotes are dropped first: they are no part, and a repetition after one repeats what
# comes before it.
shape(r) := concat("", [object.get(fixed_letter, t, object.get(other, i, "x")) | t := tokens[i]]) if {
	tokens := [t | t := regex.find_n(token_re, r, -1)[_]; not t in {"\\Q", "\\Q\\E"}]
	other := {i: letter(tokens, i) | t := tokens[i]; not fixed_letter[t]; not regex.match(`^[^*+?(]$`, t)}
}

# Groups are folded innermost first, in rounds. In a shape without groups, an alternative
# (between `|`s) that stops has an end anchor not repeated in it: the path ends there,
# whatever follows (`/a$`, `/a$x`):
#   STOP = [^|()SEX]*\$(?:[^*+|()SEX][^|()SEX]*)?
# and one that ends stops, or its last part is a / not repeated or .* (`.*` or `.*?`):
#   END = (?:STOP|[^|()SEX]*(?:/|\.\*))
# In one round every innermost group becomes the part it is to what surrounds it: an end
# anchor when its alternatives all stop, \((STOP)(?:\|STOP)*\) -> $, a / when they all end,
# \((END)(?:\|END)*\) -> /, else text, \([^()SEX]*\) -> x. (S, E and X until the round is
# over, so that a group it leaves innermost waits for the next.) A repeated group is then an
# anchor, / or text with a repetition: no stop and no ending, as SMI2206 reads it. The
# rounds are written out, eight to a call: regopy compiles a call again for every `with` in a
# test that reaches it (64 calls of one round took 150 MB a `with`).
stop_group_re := `\([^|()SEX]*\$(?:[^*+|()SEX][^|()SEX]*)?(?:\|[^|()SEX]*\$(?:[^*+|()SEX][^|()SEX]*)?)*\)`

end_group_re := `\((?:[^|()SEX]*\$(?:[^*+|()SEX][^|()SEX]*)?|[^|()SEX]*(?:/|\.\*))(?:\|(?:[^|()SEX]*\$(?:[^*+|()SEX][^|()SEX]*)?|[^|()SEX]*(?:/|\.\*)))*\)`

other_group_re := `\([^()SEX]*\)`

unmark := {"S": "$", "E": "/", "X": "x"}

inner8(s0) := s0 if not contains(s0, "(")

inner8(s0) := s8 if {
	contains(s0, "(")
	s1 := strings.replace_n(unmark, regex.replace(regex.replace(regex.replace(s0, stop_group_re, "S"), end_group_re, "E"), other_group_re, "X"))
	s2 := strings.replace_n(unmark, regex.replace(regex.replace(regex.replace(s1, stop_group_re, "S"), end_group_re, "E"), other_group_re, "X"))
	s3 := strings.replace_n(unmark, regex.replace(regex.replace(regex.replace(s2, stop_group_re, "S"), end_group_re, "E"), other_group_re, "X"))
	s4 := strings.replace_n(unmark, regex.replace(regex.replace(regex.replace(s3, stop_group_re, "S"), end_group_re, "E"), other_group_re, "X"))
	s5 := strings.replace_n(unmark, regex.replace(regex.replace(regex.replace(s4, stop_group_re, "S"), end_group_re, "E"), other_group_re, "X"))
	s6 := strings.replace_n(unmark, regex.replace(regex.replace(regex.replace(s5, stop_group_re, "S"), end_group_re, "E"), other_group_re, "X"))
	s7 := strings.replace_n(unmark, regex.replace(regex.replace(regex.replace(s6, stop_group_re, "S"), end_group_re, "E"), other_group_re, "X"))
	s8 := strings.replace_n(unmark, regex.replace(regex.replace(regex.replace(s7, stop_group_re, "S"), end_group_re, "E"), other_group_re, "X"))
}

# Groups nested up to 64 deep, as far as SMI2206 follows them.
inner64(s) := inner8(inner8(inner8(inner8(inner8(inner8(inner8(inner8(s))))))))

open_ended(r) if {
	flat := inner64(shape(r))
	not_ending(r, flat)
}

# A shape that ends: ^END(?:\|END)*$.
ends_re := `^(?:[^|()SEX]*\$(?:[^*+|()SEX][^|()SEX]*)?|[^|()SEX]*(?:/|\.\*))(?:\|(?:[^|()SEX]*\$(?:[^*+|()SEX][^|()SEX]*)?|[^|()SEX]*(?:/|\.\*)))*$`

not_ending(r, flat) if {
	not contains(flat, "(")
	not regex.match(ends_re, flat)
}

# Past 64 nested groups SMI2206 reads the last characters only, and so does this: "/", or
# "$", ".*" or ".*?" after an even number of backslashes (`/api\$` ends with a literal
# dollar). A regex of one rule (`trim_right` fails in regopy on a string with `\x41` in it).
not_ending(r, flat) if {
	contains(flat, "(")
	not regex.match(text_ending_re, r)
}

text_ending_re := choices[backslash_width - 1] if {
	choices := [
		`(?:^|[^\\])(?:\\\\)*(?:\$|\.\*\??)$|/$`,
		`(?:^|[^\\])(?:\\\\\\\\)*(?:\$|\.\*\??)$|/$`,
	]
}

# Most regexes have no escape, class, group or alternation, and `$` only last: their ending is
# their last characters, and no token is needed.
simple(r) if regex.match(`^[^\\\[\]()|$]*$`, r)

simple_ending(r) if regex.match(`^[^\\\[\]()|$]*(?:\$|/|\.\*\??)$`, r)

anchored(r) if simple_ending(r)

anchored(r) if {
	not simple(r)
	not simple_ending(r)
	not open_ended(r)
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

"""The Rego module smictl puts between a policy and the built-ins regopy gets wrong.

regopy 1.5.2 (rego-cpp) answers differently from OPA for some built-ins, in ways a policy
cannot tell and that change a deny (each measured against regopy; OPA's answer as its
documentation and source give it):

- `time.parse_rfc3339_ns` of a time that ends in `Z` (as Kubernetes writes every timestamp) is
  undefined, where a numeric offset parses: an expiry check never denied.
- `semver.compare` compares fields as text: 1.10.0 < 1.9.0, 10.0.0 < 9.0.0, and 1.0.0-alpha >
  1.0.0; a minimum-version check admitted old versions and denied new ones.
  `semver.is_valid` takes `1.2.3.4`, `01.2.3` and ` 1.2.3` as versions, and not `v1.2.3`.
- `urlquery.encode` writes a space as `%20` (OPA, as Go's `url.QueryEscape`: `+`), and
  `urlquery.decode` leaves a `+` as it is (OPA: a space); so do the `_object` forms,
  `urlquery.encode_object` keeps keys, and a set's values, in the order they were written
  (OPA: sorted), and `urlquery.decode_object` gives a value twice when its pair has an escape
  (`a=c%20d`: `["c d", "c d"]`). Where OPA's built-in errs (so its call is undefined), an
  escape that is not `%` and two hex digits fails regopy's `urlquery.decode` and
  `decode_object` (the whole evaluation: a denial), and `encode_object` leaves out a value
  that is not a string or an array or set of strings.
- `min`, `max` and `sort` order numbers as text: `min([3, 10])` is 10, `max([3, 10])` 3,
  `sort([3, 10, 2])` is `[10, 2, 3]` (sets of numbers, and `<`, are right); a policy that
  capped the largest weight or step read the wrong one. Collections of numbers are ordered
  here; any other goes to the built-in, which orders strings as OPA does.

`smi.policy.modules.with_compat` writes each call of one of `BUILT_INS` as a call of the
function here of the name given (`data.__smictl.compat.semver_compare(a, b)`), in policies
and tests. The functions that call the built-in they stand for keep a test's `with
time.parse_rfc3339_ns as ...` working as written; for those that do not (`semver.*`, written
in Rego after SemVer 2.0.0 §2 and §11), a `with` of the built-in is written as a `with` of
the function here.
"""

from __future__ import annotations

from typing import Final

NAME: Final = "<smictl compat>"
PACKAGE: Final = "__smictl.compat"

# Built-in -> the function of this module that stands for it.
BUILT_INS: Final = {
    "time.parse_rfc3339_ns": "parse_rfc3339_ns",
    "semver.compare": "semver_compare",
    "semver.is_valid": "semver_is_valid",
    "urlquery.encode": "urlquery_encode",
    "urlquery.decode": "urlquery_decode",
    "urlquery.encode_object": "urlquery_encode_object",
    "urlquery.decode_object": "urlquery_decode_object",
    "min": "num_min",
    "max": "num_max",
    "sort": "num_sort",
}
# The built-ins whose function here never calls them (for some arguments): a `with` of one
# must name the function.
WRITTEN_IN_REGO: Final = frozenset({"semver.compare", "semver.is_valid", "min", "max", "sort"})

# SemVer 2.0.0 (semver.org §2, §9, §10: no leading zeros, no empty identifiers), with one
# leading `v`, as OPA's parser takes it; groups: major, minor, patch, pre-release.
_NUMBER = "(0|[1-9][0-9]*)"
_PRERELEASE_ID = "(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = "[0-9A-Za-z-]+"
SEMVER: Final = (
    rf"^v?{_NUMBER}\.{_NUMBER}\.{_NUMBER}"
    rf"(?:-({_PRERELEASE_ID}(?:\.{_PRERELEASE_ID})*))?"
    rf"(?:\+{_BUILD_ID}(?:\.{_BUILD_ID})*)?$"
)

SOURCE: Final = f"""package {PACKAGE}

import rego.v1

parse_rfc3339_ns(value) := time.parse_rfc3339_ns(regex.replace(value, "Z$", "+00:00"))

# A version as OPA's semver built-ins take it (SEMVER); semver.compare is an error otherwise.
_semver := `{SEMVER}`

semver_is_valid(v) := regex.match(_semver, v) if is_string(v)

semver_is_valid(v) := false if not is_string(v)

# Precedence (§11): major, minor, patch as numbers, then a version without a pre-release
# above one with, then pre-release identifiers left to right. Undefined for a non-version.
semver_compare(a, b) := _first_of([
\t_cmp_number(x[1], y[1]),
\t_cmp_number(x[2], y[2]),
\t_cmp_number(x[3], y[3]),
\t_cmp_prerelease(x[4], y[4]),
]) if {{
\tx := regex.find_all_string_submatch_n(_semver, a, 1)[0]
\ty := regex.find_all_string_submatch_n(_semver, b, 1)[0]
}}

_first_of(cs) := [c | some c in cs; c != 0][0]

_first_of(cs) := 0 if count([c | some c in cs; c != 0]) == 0

_sign(n) := -1 if n < 0

_sign(n) := 0 if n == 0

_sign(n) := 1 if n > 0

_cmp_text(p, q) := -1 if p < q

_cmp_text(p, q) := 0 if p == q

_cmp_text(p, q) := 1 if p > q

# Digits without leading zeros (of any length): the longer is the greater, else the text.
_cmp_number(p, q) := _first_of([_sign(count(p) - count(q)), _cmp_text(p, q)])

_cmp_prerelease(p, q) := 0 if p == q

_cmp_prerelease(p, q) := 1 if {{
\tp == ""
\tq != ""
}}

_cmp_prerelease(p, q) := -1 if {{
\tp != ""
\tq == ""
}}

# Identifier by identifier; when one list is a prefix of the other, the longer is greater.
_cmp_prerelease(p, q) := _first_of(array.concat(
\t[_cmp_identifier(ps[i], qs[i]) | some i in numbers.range(0, _shorter(ps, qs) - 1)],
\t[_sign(count(ps) - count(qs))],
)) if {{
\tp != q
\tp != ""
\tq != ""
\tps := split(p, ".")
\tqs := split(q, ".")
}}

_shorter(ps, qs) := _num_min([count(ps), count(qs)])

_numeric(s) if regex.match(`^[0-9]+$`, s)

_cmp_identifier(p, q) := _cmp_number(p, q) if {{
\t_numeric(p)
\t_numeric(q)
}}

_cmp_identifier(p, q) := -1 if {{
\t_numeric(p)
\tnot _numeric(q)
}}

_cmp_identifier(p, q) := 1 if {{
\tnot _numeric(p)
\t_numeric(q)
}}

_cmp_identifier(p, q) := _cmp_text(p, q) if {{
\tnot _numeric(p)
\tnot _numeric(q)
}}

urlquery_encode(x) := replace(urlquery.encode(x), "%20", "+")

# Undefined (OPA: an error, which leaves the expression undefined) for a `%` not followed by
# two hex digits, as Go's url.QueryUnescape refuses it: regopy's built-in failed the whole
# evaluation on `%zz` (an error result, so a deny).
urlquery_decode(x) := urlquery.decode(replace(x, "+", "%20")) if {{
	is_string(x)
	regex.match(`^(?:[^%]|%[0-9A-Fa-f]{{2}})*$`, x)
}}

# As Go's url.ParseQuery (regopy's gives a value twice when its pair has an escape): pairs
# split at `&`, empty ones skipped, each at its first `=`; undefined for a `;` (Go refuses it
# as a separator), a pair that does not decode, or what is not a string (regopy: {{}}).
urlquery_decode_object(x) := {{key: [pair[1] | some pair in pairs; pair[0] == key] |
	some [key, _] in pairs
}} if {{
	is_string(x)
	not contains(x, ";")
	parts := [part | some part in split(x, "&"); part != ""]
	pairs := [[urlquery_decode(kv[0]), urlquery_decode(value)] |
		some part in parts
		kv := split(part, "=")
		value := concat("=", array.slice(kv, 1, count(kv)))
	]
	count(pairs) == count(parts)
}}

# Undefined, as OPA's built-in (an error), for a value that is not a string or an array or
# set of strings, where regopy's left its key out.
urlquery_encode_object(o) := concat("&", [text |
\tsome k in sort(object.keys(o))
\ttext := _query_pairs(k, o[k])
\ttext != ""
]) if {{
\tis_object(o)
\tevery v in o {{ _query_value(v) }}
}}

_query_value(v) if is_string(v)

_query_value(v) if {{
\tis_array(v)
\tevery s in v {{ is_string(s) }}
}}

_query_value(v) if {{
\tis_set(v)
\tevery s in v {{ is_string(s) }}
}}

_query_pairs(k, v) := _query_text({{k: v}}) if not is_set(v)

_query_pairs(k, v) := _query_text({{k: sort(v)}}) if is_set(v)

_query_text(o) := replace(urlquery.encode_object(o), "%20", "+")

# Numbers in order by `<`, which regopy gets right; anything else (strings, mixed, empty) as
# the built-in orders it.
_numbers(xs) if {{
\tcount(xs) > 0
\tevery x in xs {{ is_number(x) }}
}}

num_min(xs) := _num_min(xs) if _numbers(xs)

num_min(xs) := min(xs) if not _numbers(xs)

num_max(xs) := [v | some v in xs; every w in xs {{ v >= w }}][0] if _numbers(xs)

num_max(xs) := max(xs) if not _numbers(xs)

_num_min(xs) := [v | some v in xs; every w in xs {{ v <= w }}][0]

num_sort(xs) := [arr[i] |
\tsome r in numbers.range(0, n - 1)
\tsome i in numbers.range(0, n - 1)
\t_rank(arr, i) == r
] if {{
\t_numbers(xs)
\tarr := [v | some v in xs]
\tn := count(arr)
}}

num_sort(xs) := sort(xs) if not _numbers(xs)

# Where arr[i] goes: the elements below it, then the equal ones before it. (The element is
# passed in: regopy misreads `arr[i]` of a function's arguments inside a comprehension.)
_rank(arr, i) := _count_below(arr, arr[i]) + _count_equal_before(arr, arr[i], i)

_count_below(arr, x) := count([w | some w in arr; w < x])

_count_equal_before(arr, x, k) := count([j |
\tsome j in numbers.range(0, count(arr) - 1)
\tarr[j] == x
\tj < k
])
"""

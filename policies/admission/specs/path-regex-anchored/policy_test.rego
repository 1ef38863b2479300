package smi.admission.specs.path_regex_anchored_test

import data.smi.admission.specs.path_regex_anchored as policy
import rego.v1

group(regexes) := {
	"kind": "HTTPRouteGroup",
	"metadata": {"name": "routes", "namespace": "default"},
	"matches": [{"name": sprintf("m%v", [i]), "pathRegex": regexes[i], "methods": null, "headers": null} |
		some i in numbers.range(0, count(regexes) - 1)
	],
}

paths(regexes) := {x.path | some x in v} if {
	request := {"operation": "CREATE", "object": {"spec": {}}}
	v := policy.violation with input.request as request with input.hub as group(regexes)
}

test_anchored_forms_are_allowed if {
	paths(["/metrics$", "/api/", "/static/.*", ".*"]) == set()
}

test_prefix_only_regex_is_reported if {
	paths(["/metrics$", "/api"]) == {"spec.matches[1].pathRegex"}
}

test_message_names_the_match_and_the_fix if {
	request := {"operation": "CREATE", "object": {"spec": {}}}
	v := policy.violation with input.request as request with input.hub as group(["/api"])
	some x in v
	x.msg == "match m0: /api also matches longer paths (/api-admin); end it with $, / or .*"
}

test_a_regex_that_is_not_a_literal_path_gets_no_made_up_example if {
	request := {"operation": "CREATE", "object": {"spec": {}}}
	v := policy.violation with input.request as request with input.hub as group(["/users/[0-9]+", "api"])
	{x.msg | some x in v} == {
		"match m0: /users/[0-9]+ also matches longer paths; end it with $, / or .*",
		"match m1: api also matches longer paths; end it with $, / or .*",
	}
}

test_the_example_is_a_path_the_regex_matches if {
	policy.example("/metrics") == "/metrics-admin"
	policy.example("/favicon.ico") == "/favicon.ico-admin"
	not policy.example("/a|b")
	not policy.example("metrics")
}

test_match_without_path_regex_means_any_path_and_passes if {
	hub := {"kind": "HTTPRouteGroup", "matches": [{"name": "all", "pathRegex": null}]}
	request := {"operation": "CREATE", "object": {"spec": {}}}
	count(policy.violation) == 0 with input.request as request with input.hub as hub
}

test_flat_layout_points_at_root_matches if {
	request := {"operation": "CREATE", "object": {"matches": []}}
	v := policy.violation with input.request as request with input.hub as group(["/a", "/b$"])
	{x.path | some x in v} == {"matches[0].pathRegex"}
}

test_at_most_a_hundred_are_reported_one_by_one if {
	regexes := [sprintf("/r%v", [i]) | some i in numbers.range(0, 149)]
	found := paths(regexes)
	count(found) == 101
	"spec.matches[99].pathRegex" in found
	not "spec.matches[100].pathRegex" in found
	"spec.matches" in found
}

test_the_rest_are_counted if {
	request := {"operation": "CREATE", "object": {"spec": {}}}
	regexes := array.concat(["/ok$"], [sprintf("/r%v", [i]) | some i in numbers.range(0, 104)])
	v := policy.violation with input.request as request with input.hub as group(regexes)
	some x in v
	x.path == "spec.matches"
	x.msg == "5 more matches have a pathRegex anchored at the start only"
}

test_an_escaped_end_is_no_anchor if {
	paths(["/api\\$", "/api\\\\$", "/static\\.*", "/static\\\\.*"]) == {
		"spec.matches[0].pathRegex",
		"spec.matches[2].pathRegex",
	}
}

test_an_empty_regex_is_said_to_match_every_path if {
	request := {"operation": "CREATE", "object": {"spec": {}}}
	v := policy.violation with input.request as request with input.hub as group([""])
	{x.msg | some x in v} == {"match m0: '' matches every path, as if pathRegex were absent; remove it, or write .* to say so"}
}

# rego-cpp failed the whole evaluation on `\x41` in a regex ending in $ (trim_right).
test_a_hex_escape_does_not_fail_the_policy if {
	paths(["/a\\x41$", "/a\\x41", "/a\\x{41}\\$"]) == {"spec.matches[1].pathRegex", "spec.matches[2].pathRegex"}
}

# As SMI2206 (smi/validation/regex.py: end_anchored): every alternative must end.
test_an_alternative_without_an_ending_is_reported if {
	paths(["/admin|/api$", "(/admin)|(/api)$", "/internal|/api.*", "/api/|/internal", "/a|"]) == {
		"spec.matches[0].pathRegex",
		"spec.matches[1].pathRegex",
		"spec.matches[2].pathRegex",
		"spec.matches[3].pathRegex",
		"spec.matches[4].pathRegex",
	}
}

test_an_anchor_in_a_group_or_written_z_is_an_ending if {
	paths(["/api\\z", "/a(?:$|/)", "(/a|/b)$", "(?P<v>/a$)", "/a(?:/b$|/c/)", "(?i)/api$", "/a$x"]) == set()
}

test_every_alternative_of_a_trailing_group_must_end if {
	paths(["/a(?:/b|/c$)", "/a(|/b$)", "/a/((?i))", "((/a|/b/)|(/c.*))"]) == {
		"spec.matches[0].pathRegex",
		"spec.matches[1].pathRegex",
		"spec.matches[2].pathRegex",
		"spec.matches[3].pathRegex",
	}
}

test_a_repeated_ending_is_none if {
	paths(["/api/?", "/a(/b$)*", "/a(/)?", "/a.+?", "/a/+", "/a$*"]) == {
		"spec.matches[0].pathRegex",
		"spec.matches[1].pathRegex",
		"spec.matches[2].pathRegex",
		"spec.matches[3].pathRegex",
		"spec.matches[4].pathRegex",
		"spec.matches[5].pathRegex",
	}
}

# Matched at its start, "/a.*?" allows the paths "/a.*" allows: it ends, as SMI2206 reads it.
test_a_lazy_dot_star_ends_as_dot_star_does if {
	paths(["/a.*?", "/a(/.*?)", "/b$|/a.*?", "(?U)/a.*", "/a\\.*?", "/a/*?"]) == {
		"spec.matches[4].pathRegex",
		"spec.matches[5].pathRegex",
	}
}

test_classes_quotes_and_escapes_are_read_as_regex_syntax if {
	paths(["/api[$]", "/a[\\]|]/", "/a\\/", "/a\\Q/\\E", "/a\\Qx$\\E", "/a\"b$", "/a\\\\$", "/users/[^/]+/"]) == {
		"spec.matches[0].pathRegex",
		"spec.matches[4].pathRegex",
	}
}

test_groups_nested_past_64_are_read_by_their_last_characters if {
	deep(64, "/a$", "") == set()
	deep(65, "/a$", "") == {"spec.matches[0].pathRegex"}
	deep(65, "/a", "$") == set()
}

deep(n, core, tail) := paths([concat("", [
	concat("", [x | some _ in numbers.range(1, n); x := "("]),
	core,
	concat("", [x | some _ in numbers.range(1, n); x := ")"]),
	tail,
])])

"""A call to a built-in regopy does not implement is refused at load (SMI5002, with its line).

`net.cidr_contains(blocked, ip)` compiled, and was undefined for every object: a policy that
denied addresses inside a blocked range admitted them all (fail-open), and one written as
`not net.cidr_contains(...)` denied everything. OPA runs these built-ins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from policy_types import RunCli, WritePolicy
from regopy import Interpreter

from smi.policy.modules import read_modules
from smi.policy.unsupported_calls import UNSUPPORTED, check

# Arguments OPA evaluates each with (to a value, or, for http.send, an error status object).
VALID_ARGS: dict[str, list[Any]] = {
    "net.cidr_contains": ["10.0.0.0/8", "10.1.2.3"],
    "net.cidr_contains_matches": [["10.0.0.0/8"], ["10.1.2.3"]],
    "net.cidr_expand": ["10.0.0.0/30"],
    "net.cidr_intersects": ["10.0.0.0/8", "10.1.0.0/16"],
    "net.cidr_is_valid": ["10.0.0.0/8"],
    "net.cidr_merge": [["10.0.0.0/8", "10.1.0.0/16"]],
    "net.lookup_ip_addr": ["localhost"],
    "http.send": [{"method": "get", "url": "http://127.0.0.1:9/", "raise_error": False}],
    "json.match_schema": [{}, {"required": ["x"]}],
    "json.verify_schema": [{"type": "object"}],
    "rego.metadata.chain": [],
    "rego.metadata.rule": [],
    "rego.parse_module": ["a.rego", "package a"],
    "strings.render_template": ["{{.a}}", {"a": 1}],
    "graphql.is_valid": ["{a}", "type Query {a: Int}"],
    "graphql.parse": ["{a}", "type Query {a: Int}"],
    "graphql.parse_and_verify": ["{a}", "type Query {a: Int}"],
    "graphql.parse_query": ["{a}"],
    "graphql.parse_schema": ["type Query {a: Int}"],
    "graphql.schema_is_valid": ["type Query {a: Int}"],
    "providers.aws.sign_req": [{}, {}, 0],
}


def test_every_name_has_valid_arguments_here() -> None:
    assert sorted(VALID_ARGS) == sorted(n for names in UNSUPPORTED.values() for n in names)


@pytest.mark.parametrize("name", sorted(VALID_ARGS))
def test_regopy_still_leaves_each_undefined(name: str) -> None:
    """If regopy learns one, this fails: take it off the list rather than refuse a policy
    regopy could run."""
    args = ", ".join(json.dumps(a) for a in VALID_ARGS[name])
    rego = Interpreter()
    rego.add_module("p.rego", f"package p\nimport rego.v1\nx := {name}({args})\n")
    assert str(rego.query("data.p.x")) == "undefined"


def _modules(tmp_path: Path, body: str) -> Any:
    d = tmp_path / "p" / "a"
    d.mkdir(parents=True)
    (d / "policy.rego").write_text("package acme.a\n\nimport rego.v1\n\n" + body)
    return read_modules([tmp_path / "p"])


def test_a_call_is_named_once_per_module_with_its_first_line(tmp_path: Path) -> None:
    modules = _modules(
        tmp_path,
        'violation contains {"msg": "blocked"} if {\n'
        "  some cidr in data.parameters.blocked\n"
        "  net.cidr_contains(cidr, input.hub.metadata.annotations.ip)\n"
        "}\n\n"
        'also if net.cidr_contains("10.0.0.0/8", "10.1.2.3")\n'
        "schema_ok if json.match_schema ( input.hub, {} )[0]\n",
    )
    found = [(d.line, d.message.split(":")[0], d.code) for d in check(modules)]
    assert found == [
        (7, "net.cidr_contains", "SMI5002"),
        (11, "json.match_schema", "SMI5002"),
    ]
    assert "does not implement networking built-ins" in check(modules)[0].message


def test_names_that_are_no_such_call_are_left_alone(tmp_path: Path) -> None:
    modules = _modules(
        tmp_path,
        "# net.cidr_contains(a, b) is not here\n"
        'msg := "http.send(x) is a string"\n'
        "raw := `rego.metadata.rule()`\n"
        "mine if data.net.cidr_contains(1, 2)\n"
        "other if my.net.cidr_contains(1)\n"
        "cidr_contains(a, b) := a == b\n"
        "longer if net.cidr_contains_all(1)\n"
        "also if xnet.cidr_merge(1)\n",
    )
    assert check(modules) == []


def test_admit_refuses_such_a_policy(write_policy: WritePolicy, run_cli: RunCli) -> None:
    root = write_policy(
        "egress",
        'violation contains {"msg": "blocked"} if {\n'
        '  net.cidr_contains("10.0.0.0/8", input.hub.metadata.name)\n'
        "}\n",
    )
    code, out, err = run_cli("policy", "list", "--no-shipped-policies", "--policies", str(root))
    assert (code, out) == (1, "")
    [line] = err.strip().splitlines()
    assert ": net.cidr_contains: the embedded Rego engine (regopy) does not implement" in line
    assert line.endswith("(SMI5002)")


def test_policy_test_refuses_it_too(write_policy: WritePolicy, run_cli: RunCli) -> None:
    root = write_policy(
        "egress",
        'violation contains {"msg": "blocked"} if {\n'
        '  not net.cidr_contains("10.0.0.0/8", input.hub.metadata.name)\n'
        "}\n",
        test="test_denies if { count(data.test.egress.violation) == 1 }\n",
    )
    code, _, err = run_cli("policy", "test", str(root))
    assert code == 1
    assert "net.cidr_contains: the embedded Rego engine" in err


def test_regopy_still_reads_a_v0_partial_set_as_an_object() -> None:
    """If regopy learns to read it as a set (as OPA v0 does), this fails: then it could run."""
    rego = Interpreter()
    rego.add_module("b.rego", 'package b\n\nblocked[name] {\n  name := ["evil"][_]\n}\n')
    assert str(rego.query('x := "evil" in data.b.blocked')).endswith('"bindings":{"x":false}}')


def test_a_v0_partial_set_is_refused_for_any_rule(tmp_path: Path) -> None:
    modules = _modules(
        tmp_path,
        "blocked[name] {\n  some name in input.names\n}\n\n"
        '  indented["a"] { true }\n'
        "lib.deep[x]\n{\n  x := 1\n}\n"
        'violation[{"msg": m}] { m := "x" }\n',
    )
    found = [(d.line, d.code, d.message.split(":")[0]) for d in check(modules)]
    assert found == [
        (5, "SMI5002", "`blocked` is an object, not a set, to the embedded engine (regopy)"),
        (9, "SMI5002", "`indented` is an object, not a set, to the embedded engine (regopy)"),
        (10, "SMI5002", "`lib.deep` is an object, not a set, to the embedded engine (regopy)"),
        (14, "SMI5002", "`violation` is an object, not a set, to the embedded engine (regopy)"),
    ]
    assert check(modules)[0].message.endswith("write `blocked contains name if { ... }`")
    assert 'write `violation contains {"msg": m} if { ... }`' in check(modules)[3].message


def test_shapes_regopy_reads_as_opa_v1_does_are_left_alone(tmp_path: Path) -> None:
    modules = _modules(
        tmp_path,
        "blocked contains name if {\n  some name in input.names\n}\n"
        'flags["a"] if { true }\n'
        'flags["b"]\n'
        "limits[k] := 1 if { some k in input.names }\n"
        "allow if {\n  input.x[0] == 1\n}\n"
        "default also := false\n"
        "f(x) := {x: true}\n",
    )
    assert check(modules) == []


def test_a_v0_helper_set_no_longer_admits_what_it_blocks(tmp_path: Path, run_cli: RunCli) -> None:
    """`blocked[name] { ... }` in a helper module without `import rego.v1`: `s.service in
    blocklist.blocked` was never true, so the policy admitted every blocked backend."""
    policy = tmp_path / "p" / "acme" / "v0"
    lib = tmp_path / "p" / "lib"
    policy.mkdir(parents=True)
    lib.mkdir(parents=True)
    (lib / "blocklist.rego").write_text(
        'package lib.blocklist\n\nblocked[name] {\n\tname := ["checkout-v1"][_]\n}\n'
    )
    (policy / "policy.rego").write_text(
        "# METADATA\n# title: v0 helper\n# custom:\n#   code: ACME0017\n#   enforcement: deny\n"
        "package acme.v0\n\nimport rego.v1\nimport data.lib.blocklist\n\n"
        'violation contains {"msg": "blocked"} if {\n'
        "\tsome s in input.hub.backends\n\ts.service in blocklist.blocked\n}\n"
    )
    (tmp_path / "split.yaml").write_text(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n"
        "metadata: {name: checkout, namespace: shop}\n"
        "spec:\n  service: checkout\n  backends: [{service: checkout-v1, weight: 100}]\n"
    )
    code, out, err = run_cli(
        "admit", "-f", str(tmp_path / "split.yaml"), "--policies", str(tmp_path / "p"),
        "--no-shipped-policies",
    )  # fmt: skip
    assert (code, out) == (1, "")
    [line] = err.strip().splitlines()
    assert line.startswith(f"{lib / 'blocklist.rego'}:3: `blocked` is an object, not a set")
    assert line.endswith("write `blocked contains name if { ... }` (SMI5002)")


# Patterns OPA's RE2 matches against the value, that regopy leaves undefined.
GROUPS = [
    ("(?s:a.b)", "a\nb"),
    ("(?s)a.b", "a\nb"),
    ("(?i)^admin$", "Admin"),
    ("a(?i:b)", "aB"),
    ("(?m)^b$", "a\nb"),
    ("(?-s:a.b)", "axb"),
    ("(?P<n>ab)", "ab"),
    ("(?<n>ab)", "ab"),
]


@pytest.mark.parametrize(("pattern", "value"), GROUPS)
def test_regopy_still_leaves_a_flag_or_named_group_undefined(pattern: str, value: str) -> None:
    """If regopy learns one, this fails: stop refusing it rather than refuse a policy regopy
    could run. (The value is input: regopy counts `\\n` in a module's string as two
    characters.)"""
    rego = Interpreter()
    rego.set_input({"v": value})
    rego.add_module(
        "p.rego", f"package p\nimport rego.v1\nx := regex.match({json.dumps(pattern)}, input.v)\n"
    )
    assert str(rego.query("data.p.x")) == "undefined"


def test_a_constant_pattern_with_a_flag_or_named_group_is_refused(tmp_path: Path) -> None:
    """`regex.match("(?s:a.b)", v)` and the rest were undefined: `violation` never held (an
    `admin` in any case admitted), and under `not` always."""
    modules = _modules(
        tmp_path,
        'violation contains {"msg": "admin"} if {\n'
        '  regex.match("(?i)^admin$", input.hub.metadata.name)\n'
        "}\n"
        "a if regex.match(`(?s:a.b)`, input.x)\n"
        'b if regex.replace(input.x, "(?-m)^a", "b") == "b"\n'
        "c if regex.find_n(\n  `(?P<v>a)`,\n  input.x,\n  1\n)\n"
        'd if re_match("x(?<n>a)", input.x)\n'
        'e if regex.split("(?U)a+", input.x)\n',
    )
    found = [(d.line, d.code, d.message.split(" is not")[0]) for d in check(modules)]
    assert found == [
        (6, "SMI5002", "regex.match: the pattern's flag group `(?i)`"),
        (8, "SMI5002", "regex.match: the pattern's flag group `(?s:`"),
        (9, "SMI5002", "regex.replace: the pattern's flag group `(?-m)`"),
        (10, "SMI5002", "regex.find_n: the pattern's named group `(?P<v>`"),
        (15, "SMI5002", "re_match: the pattern's named group `(?<n>`"),
        (16, "SMI5002", "regex.split: the pattern's flag group `(?U)`"),
    ]
    messages = [d.message for d in check(modules)]
    assert messages[0].endswith(
        "write the pattern without it (both cases, `[Aa]dmin`, for `i`), or evaluate with --opa-url"
    )
    assert "(`[\\s\\S]` for a `.` that matches a newline, for `s`)" in messages[1]
    assert "(drop it: the flags it turns off are off already)" in messages[2]
    assert "(a plain group, `(...)`)" in messages[3]


def test_patterns_without_such_a_group_are_left_alone(tmp_path: Path) -> None:
    modules = _modules(
        tmp_path,
        "a if regex.match(`^(?:a|b)$`, input.x)\n"
        "b if regex.match(`\\(?i)`, input.x)\n"
        'c if regex.match("[(?i)]", input.x)\n'
        'd if regex.match("[](?i)]", input.x)\n'
        'e if regex.replace("(?i)", `a`, "b") == "b"\n'
        "p := `(?i)x`\n"
        "f if regex.match(p, input.x)\n"
        'g if regex.match(concat("", ["(?i)", "x"]), input.x)\n'
        'h if data.lib.regex.match("(?i)x", input.x)\n'
        'msg := "regex.match(\\"(?i)x\\", y)"\n',
    )
    assert check(modules) == []


def test_admit_refuses_a_policy_with_such_a_pattern(tmp_path: Path, run_cli: RunCli) -> None:
    """It admitted `admin`: `(?i)` left the match undefined, so the policy never denied."""
    d = tmp_path / "p" / "acme" / "noadmin"
    d.mkdir(parents=True)
    (d / "policy.rego").write_text(
        "# METADATA\n# title: no admin\n# custom:\n#   code: ACME0031\n#   enforcement: deny\n"
        "package acme.noadmin\n\nimport rego.v1\n\n"
        'violation contains {"msg": "admin"} if {\n'
        '\tregex.match("(?i)^admin$", input.hub.metadata.name)\n}\n'
    )
    (tmp_path / "split.yaml").write_text(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n"
        "metadata: {name: admin, namespace: shop}\n"
        "spec:\n  service: checkout\n  backends: [{service: checkout-v1, weight: 100}]\n"
    )
    code, out, err = run_cli(
        "admit", "-f", str(tmp_path / "split.yaml"), "--policies", str(tmp_path / "p"),
        "--no-shipped-policies",
    )  # fmt: skip
    assert (code, out) == (1, "")
    [line] = err.strip().splitlines()
    assert line.startswith(
        f"{d / 'policy.rego'}:11: regex.match: the pattern's flag group `(?i)` is not supported"
    )
    assert line.endswith("(SMI5002)")

"""A broken scenario file is reported in one line per problem, `file:line: field.path: reason`,
at the line of the field at fault: YAML syntax errors, keys written twice (which PyYAML
silently dropped), and the cross-field checks of the model (which pydantic places on line 1,
with its "Value error, " prefix and the path inside the message)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.catalog import ScenarioError, discover, load_text

HEAD = """\
description: d
capability: c
smi_versions: [access.smi-spec.io/v1alpha3]
workloads:
  - identity: a/x
  - {identity: a/y, services: [y]}
"""


def _errors(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_text(text, name="b/broken", filename="broken.yaml")
    assert all("\n" not in line for line in info.value.lines), info.value.lines
    return info.value.lines


def test_a_yaml_syntax_error_is_one_line_at_the_problem() -> None:
    text = HEAD + "steps:\n  - request: {from: a/x, to: y\n    expect: {status: 403}\n"
    assert _errors(text) == [
        "broken.yaml:8: YAML syntax error: while parsing a flow mapping, "
        "did not find expected ',' or '}' at line 9"
    ]


def test_a_key_written_twice_in_a_step_is_an_error_at_the_second() -> None:
    # PyYAML kept the last `expect:`: the step checked only `status: 403` and passed.
    text = HEAD + (
        "steps:\n"
        "  - request: {from: a/x, to: y, count: 2}\n"
        "    expect: {status: 200, allowed: 2}\n"
        "    expect: {status: 403}\n"
    )
    assert _errors(text) == [
        "broken.yaml:10: YAML syntax error: duplicate key 'expect' in one mapping"
    ]


def test_a_top_level_key_written_twice_is_not_reported_as_a_missing_step() -> None:
    text = HEAD + (
        "steps:\n  - request: {from: a/x, to: y}\n    expect: {status: 403}\nsteps: []\n"
    )
    assert _errors(text) == [
        "broken.yaml:10: YAML syntax error: duplicate key 'steps' in one mapping"
    ]


def test_a_second_document_is_refused() -> None:
    text = HEAD + "steps:\n  - request: {from: a/x, to: y}\n    expect: {status: 403}\n---\nx: 1\n"
    assert _errors(text) == ["broken.yaml:11: a scenario file holds one document"]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            "steps:\n  - request: {from: a/x, to: y}\n    expect: {status: 403}\n"
            "  - apply: [nothere]\n",
            "broken.yaml:10: steps[1]: resource 'nothere' is not in `resources`",
        ),
        (
            "steps:\n  - request:\n      to: y\n      from: a/zz\n    expect: {status: 403}\n",
            "broken.yaml:10: steps[0].request.from: 'a/zz' is not a workload identity",
        ),
        (
            "steps:\n  - request:\n      from: a/x\n      to: z\n    expect: {status: 403}\n",
            "broken.yaml:10: steps[0].request.to: no workload backs the service a/z",
        ),
        (
            "steps:\n  - request: {from: a/x, to: y, count: 2}\n    expect:\n"
            "      status: 200\n      allowed: 3\n",
            "broken.yaml:11: steps[0].expect.allowed: expect.allowed (3) exceeds request.count (2)",
        ),
        (
            "steps:\n  - request: {from: a/x, to: y}\n    expect:\n      backends:\n"
            "        share: {y: 0.5}\n",
            "broken.yaml:11: steps[0].expect.backends.share: shares must sum to 1, not 0.5",
        ),
        (
            "steps:\n  - request: {from: a/x, to: y}\n    expect:\n      identity: nobody\n",
            "broken.yaml:10: steps[0].expect.identity: 'nobody' is not ns/sa",
        ),
        ("steps: []\n", "broken.yaml:7: steps: a scenario needs at least one step"),
        (
            "steps:\n  - request: {from: a/x, to: y, path: nope}\n    expect: {status: 403}\n",
            "broken.yaml:8: steps[0].request.path: a path starts with '/'",
        ),
    ],
)
def test_model_checks_point_at_the_field_without_a_prefix(steps: str, expected: str) -> None:
    assert _errors(HEAD + steps) == [expected]


def test_repeated_workload_names_point_at_the_repeat() -> None:
    text = HEAD.replace("  - {identity: a/y", "  - {identity: b/x}\n  - {identity: a/y") + (
        "steps:\n  - request: {from: a/x, to: y}\n    expect: {status: 403}\n"
    )
    assert _errors(text) == [
        "broken.yaml:6: workloads[1].identity: names must be unique, repeated: x"
    ]


def test_no_error_line_of_a_broken_directory_carries_pydantics_prefix(tmp_path: Path) -> None:
    area = tmp_path / "b"
    area.mkdir()
    bodies = {
        "regex": "steps:\n  - request: {from: a/x, to: y}\n    expect: {reason: '('}\n",
        "counts": "steps:\n  - request: {from: a/x, to: y}\n    expect:\n"
        "      backends: {counts: {y: 1}, share: {y: 1}}\n",
        "dup": "steps:\n  - {apply: [r]}\nresources: {r: {}}\nresources: {r: {}}\n",
        "syntax": "steps: [\n",
    }
    for name, body in bodies.items():
        (area / f"{name}.yaml").write_text(HEAD + body, encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        discover(root=tmp_path)
    lines = info.value.lines
    assert len(lines) == len(bodies)
    assert not [x for x in lines if "Value error" in x or "\n" in x], lines
    assert all(x.startswith(f"{area}/") and x.split(":")[1].isdigit() for x in lines), lines

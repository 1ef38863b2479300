"""Hostile and malformed input through `smi.cli.main`, as a CI pipeline feeds manifests written
by others: every problem is one `file:line: path: reason (CODE)` line and a non-zero exit,
never an internal error (exit 70), a hang or unbounded memory."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

import pytest

from smi import sources
from smi.cli import main
from smi.conversion import convert_object
from smi.errors import ConversionError, PolicyError
from smi.loading import load_text
from smi.policy.policyset import read_parameters

Capsys = pytest.CaptureFixture[str]
DIGITS = "9" * 5000  # more than int() reads (sys.get_int_max_str_digits(), 4300)
SPLIT = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - service: web-v1
    weight: WEIGHT
"""
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("block.yaml", SPLIT, 8),
        ("flow.yaml", SPLIT.replace("web-v1\n    weight: WEIGHT", "{weight: WEIGHT}"), 7),
        ("tagged.yaml", SPLIT.replace("WEIGHT", "!!int WEIGHT"), 8),
        ("split.json", '{"apiVersion": "v1",\n "kind": "Service", "x": WEIGHT}', 2),
    ],
)  # fmt: skip
def test_a_number_too_long_for_int_is_a_problem_on_its_line(
    tmp_path: Path, capsys: Capsys, name: str, text: str, line: int
) -> None:
    path = tmp_path / name
    path.write_text(text.replace("WEIGHT", DIGITS))
    assert main(["validate", "-f", str(path)]) == 1
    out, _ = capsys.readouterr()
    [problem] = out.splitlines()
    assert problem.startswith(f"{path}:{line}: ")
    assert problem.endswith("(SMI1010)") or problem.endswith("(SMI1002)")
    assert main(["convert", "-f", str(path), "--to", "split.smi-spec.io/v1alpha1"]) == 1


def test_a_json_number_too_long_is_found_past_a_string_of_other_digits(
    tmp_path: Path, capsys: Capsys
) -> None:
    """JSON numbers are ASCII digits: a run of `٥` in a string before it was taken for it."""
    path = tmp_path / "svc.json"
    others = "\u0665" * 5000
    text = f'{{"apiVersion": "v1",\n "kind": "Service", "y": "{others}",\n "x": {DIGITS}}}'
    path.write_text(text, encoding="utf-8")
    assert main(["validate", "-f", str(path)]) == 1
    out, _ = capsys.readouterr()
    [problem] = out.splitlines()
    assert problem.startswith(f"{path}:3: ") and problem.endswith("(SMI1010)")


@pytest.mark.parametrize("text", [f"? {DIGITS}\n: 1\n", f"x: {{? {DIGITS}: 1}}\n"])
def test_a_long_number_as_a_key_is_its_text(text: str) -> None:
    """Keys keep their text (`80:` is "80"), in the block reader and the full parser alike.
    Explicit keys (`?`): YAML limits an implicit key to 1024 characters."""
    result = load_text(text, filename="key.yaml")
    assert [d.code for d in result.diagnostics] == ["SMI1004", "SMI1005"]


def test_a_pipe_longer_than_the_limit_is_refused_not_read_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pipe (or `/dev/zero`) has no size for fstat to bound: it is read up to the limit."""
    monkeypatch.setattr(sources, "MAX_FILE_BYTES", 1024)
    read, write = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write, b"a: 1\n" * 1000), os.close(write)))
    writer.start()
    try:
        _, text, problem = sources.read_file(f"/dev/fd/{read}")
    finally:
        writer.join()
        os.close(read)
    assert text == ""
    assert problem is not None
    assert problem.format() == f"/dev/fd/{read}: file larger than 0 MiB (SMI1010)"


def test_standard_input_longer_than_the_limit_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    monkeypatch.setattr(sources, "MAX_FILE_BYTES", 1024)
    monkeypatch.setattr("sys.stdin", io.StringIO("a: 1\n" * 1000))
    assert main(["validate", "-f", "-"]) == 1
    assert capsys.readouterr().out == "<stdin>: file larger than 0 MiB (SMI1010)\n"


def test_a_whole_weight_beyond_what_v1alpha1_holds_is_out_of_range(
    tmp_path: Path, capsys: Capsys
) -> None:
    """Loading it and then failing to convert it ended as an internal error (exit 70)."""
    path = tmp_path / "split.yaml"
    path.write_text(SPLIT.replace("WEIGHT", "99999999999999999999999999999"))
    assert main(["validate", "-f", str(path)]) == 1
    out, _ = capsys.readouterr()
    assert out.startswith(f"{path}:8: spec.backends[0].weight: weight 9999999999999999999999")
    assert out.rstrip().endswith("(SMI2103)")
    assert main(["convert", "-f", str(path), "--to", "split.smi-spec.io/v1alpha1"]) == 1
    path.write_text(SPLIT.replace("WEIGHT", "9223372036854775"))  # the largest that converts
    assert main(["convert", "-f", str(path), "--to", "split.smi-spec.io/v1alpha1"]) == 0


def test_a_hub_object_the_target_cannot_hold_is_a_conversion_error() -> None:
    [resource] = load_text(SPLIT.replace("WEIGHT", "1"), filename="s.yaml").resources
    backend = resource.obj.backends[0].model_copy(update={"weight_milli": 10**30})
    huge = resource.obj.model_copy(update={"backends": (backend,)})
    with pytest.raises(ConversionError) as exc:
        convert_object(huge, "split.smi-spec.io/v1alpha1")
    assert [d.code for d in exc.value.diagnostics] == ["SMI4002"]


@pytest.mark.parametrize("command", ["compile", "access-matrix"])
@pytest.mark.parametrize("trust_domain", ["", "a b/c", "Example.org"])
def test_an_invalid_trust_domain_is_a_usage_error(
    tmp_path: Path, capsys: Capsys, command: str, trust_domain: str
) -> None:
    """Not a policy printed with SPIFFE IDs no certificate carries (`spiffe:///ns/...`)."""
    path = tmp_path / "split.yaml"
    path.write_text(SPLIT.replace("WEIGHT", "1"))
    with pytest.raises(SystemExit) as exc:
        main([command, "-f", str(path), "--trust-domain", trust_domain])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"argument --trust-domain: invalid trust domain {trust_domain!r}" in err


def test_convert_to_an_unknown_version_is_a_usage_error(tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "split.yaml"
    path.write_text(SPLIT.replace("WEIGHT", "1"))
    assert main(["convert", "-f", str(path), "--to", "split.smi-spec.io/v9"]) == 2
    assert capsys.readouterr().err == (
        "smictl convert: --to: 'split.smi-spec.io/v9' is not an SMI version smictl serves "
        "(see `smictl version`) (SMI4001)\n"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (LAUGHS, "more than 200000 values"),
        (f"limit: {DIGITS}\n", "is too long"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("a: !!python/object/apply:os.system [true]\n", "unsupported YAML tag"),
    ],
)
def test_policy_parameters_are_read_as_boundedly_as_manifests(
    tmp_path: Path, text: str, reason: str
) -> None:
    """`yaml.safe_load` took minutes on the billion laughs (the engine serialised the
    expansion) and crashed on the long number."""
    path = tmp_path / "params.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(PolicyError) as exc:
        read_parameters(path)
    assert time.monotonic() - started < 5
    [problem] = exc.value.diagnostics
    assert problem.code == "SMI5004"
    assert problem.line is not None
    assert reason in problem.message


def test_policy_parameters_still_read_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("owners: [team-a]\nmax: 3\n")
    assert read_parameters(path) == {"owners": ["team-a"], "max": 3}
    path.write_text("{}\n")  # no parameters, said so
    assert read_parameters(path) == {}
    path.write_text("- a\n")
    with pytest.raises(PolicyError):
        read_parameters(path)


@pytest.mark.parametrize(
    "text", ["", "# generated\n---\n", "null\n", "~\n", "---\n---\n", "\ufeff\n"]
)
def test_policy_parameters_that_hold_nothing_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys, text: str
) -> None:
    """They were taken as `{}`: a step that failed quietly and left the file empty had every
    policy fall back to its defaults (an empty allow-list, a wider canary step)."""
    (tmp_path / "p.yaml").write_text(text)
    (tmp_path / "split.yaml").write_text(SPLIT.replace("WEIGHT", "1"))
    monkeypatch.chdir(tmp_path)
    assert main(["admit", "-f", "split.yaml", "--parameters", "p.yaml"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"p.yaml: {EMPTY_PARAMETERS} (SMI5004)\n")


def test_policy_parameters_of_dev_null_are_refused() -> None:
    with pytest.raises(PolicyError) as exc:
        read_parameters("/dev/null")
    [problem] = exc.value.diagnostics
    assert problem.format() == f"/dev/null: {EMPTY_PARAMETERS} (SMI5004)"


EMPTY_PARAMETERS = (
    "policy parameters must be a mapping, and the file holds none (it is empty, comments only "
    "or null); for no parameters write {}"
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("canaryMaxStep: .inf\n", "p.yaml:1: canaryMaxStep: .inf is"),
        ("a: 1\nb:\n  c: [1, -.Inf]\n", "p.yaml:3: b.c[1]: -.inf is"),
        ('{"a": 1,\n "x": NaN}', "p.json:2: x: NaN is"),
    ],
)
def test_policy_parameters_without_a_json_form_are_refused_at_their_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys, text: str, problem: str
) -> None:
    """They reached the engine, which reported a crash while parsing the first shipped policy
    (SMI5002), blaming that policy; `apply` says this of an object (SMI2003)."""
    name = problem.partition(":")[0]
    (tmp_path / name).write_text(text)
    (tmp_path / "split.yaml").write_text(SPLIT.replace("WEIGHT", "1"))
    monkeypatch.chdir(tmp_path)
    assert main(["admit", "-f", "split.yaml", "--parameters", name]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"{problem} not a number JSON can carry (SMI5004)\n")


def test_policy_parameters_name_each_number_without_a_json_form(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("x: .nan\ny: [.inf, 1]\nz: -.inf\n")
    with pytest.raises(PolicyError) as exc:
        read_parameters(path)
    [problem] = exc.value.diagnostics
    assert (problem.code, problem.path, problem.line) == ("SMI5004", "x", 1)
    assert problem.message == ".nan is not a number JSON can carry (also y[0], z)"


@pytest.mark.parametrize("fmt", ["md", "dot"])
def test_access_matrix_prints_a_regex_newline_escaped(
    tmp_path: Path, capsys: Capsys, fmt: str
) -> None:
    """A pathRegex holding a newline (validate only warns) ended the Markdown row and wrote a
    line of the manifest's own into the report."""
    manifest = tmp_path / "nl.yaml"
    manifest.write_text(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n"
        "metadata: {name: r, namespace: shop}\n"
        'spec: {matches: [{name: m, pathRegex: "/a$\\n| forged | row |"}]}\n'
        "---\napiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\n"
        "metadata: {name: t, namespace: shop}\n"
        "spec:\n  destination: {kind: ServiceAccount, name: api, namespace: shop}\n"
        "  rules: [{kind: HTTPRouteGroup, name: r}]\n"
        "  sources: [{kind: ServiceAccount, name: web, namespace: shop}]\n",
        encoding="utf-8",
    )
    assert main(["access-matrix", "-f", str(manifest), "-o", fmt]) == 0
    out = capsys.readouterr().out
    assert not any(line.startswith("| forged") for line in out.splitlines()), out
    assert "\\n" in out

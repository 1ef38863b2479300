"""What a new user met walking through the README: `--strict` passing a TrafficSplit whose
Services exist nowhere without saying it did not look, `admit -o json` writing the text report
into a file named `json`, flags without help, `1 objects`, an empty `--policies DIR` loading
nothing in silence, and an example mesh that drew a warning for every object."""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

import pytest

from smi.cli import build_parser, main

Capsys = pytest.CaptureFixture[str]
ROOT = Path(__file__).resolve().parents[3]
LEGACY_SPLIT = "examples/legacy/split-v1alpha1.yaml"
NOTE = (
    "note: no Service of namespace {} is in the set: TrafficSplit Services there are not "
    "checked (add the Services to check them)"
)
SPLIT = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {{name: {root}, namespace: {ns}, labels: {{owner: team}}}}
spec:
  service: {root}
  backends:
  - {{service: {root}-v1, weight: 100}}
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  ports: [{{port: 80}}]
"""


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)
    return ROOT


def run(capsys: Capsys, *argv: str) -> tuple[int, str, list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


# --- --strict says where it checked no Service ----------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "admit"])
def test_strict_notes_a_namespace_whose_split_services_went_unchecked(
    in_repo: Path, capsys: Capsys, command: str
) -> None:
    extra = ["--no-shipped-policies"] if command == "admit" else []
    code, _, err = run(capsys, command, "-f", LEGACY_SPLIT, "--strict", *extra)
    assert code == 0  # the rule stays: nothing to check against is not an error
    assert err[:-1] == [NOTE.format("legacy")]
    assert " 0 warnings" in err[-1]  # a note, not counted
    code, _, err = run(capsys, command, "-f", LEGACY_SPLIT, *extra)
    assert code == 0 and not any(line.startswith("note:") for line in err)


def test_strict_notes_each_namespace_once_and_not_one_whose_services_were_checked(
    tmp_path: Path, capsys: Capsys
) -> None:
    manifests = tmp_path / "m.yaml"
    where = [("zeta", "web"), ("alpha", "web"), ("zeta", "api"), ("shop", "web")]
    docs = [SPLIT.format(ns=ns, root=root) for ns, root in where]
    docs += [SERVICE.format(name=name, ns="shop") for name in ("web", "web-v1")]
    manifests.write_text("---\n".join(docs))
    code, out, err = run(capsys, "validate", "-f", str(manifests), "--strict")
    assert (code, out) == (0, "")
    assert err == [
        NOTE.format("alpha"),
        NOTE.format("zeta"),
        "valid: 4 SMI objects in 1 file; 0 errors, 0 warnings",
    ]


def test_a_service_in_the_namespace_turns_the_note_into_the_checks_it_stood_for(
    in_repo: Path, tmp_path: Path, capsys: Capsys
) -> None:
    other = tmp_path / "svc.yaml"
    other.write_text(SERVICE.format(name="unrelated", ns="legacy"))
    code, out, err = run(capsys, "validate", "-f", LEGACY_SPLIT, "-f", str(other), "--strict")
    assert code == 1 and not any(line.startswith("note:") for line in err)
    assert [re.search(r"\((SMI\d+)\)$", line)[1] for line in out.splitlines()] == [  # type: ignore[index]
        "SMI3007",
        "SMI3004",
        "SMI3004",
    ]


@pytest.mark.parametrize("command", ["validate", "admit"])
def test_help_of_strict_says_which_services_are_checked(capsys: Capsys, command: str) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Services are checked only in namespaces where the set holds some Service" in text


# --- admit -o names a file --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "junit", "sarif", "github"])
def test_admit_o_with_a_format_name_is_a_usage_error(
    in_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys, fmt: str
) -> None:
    manifests = str(in_repo / "examples" / "mesh")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["admit", "-f", manifests, "-o", fmt])
    err = capsys.readouterr().err.splitlines()
    assert exited.value.code == 2 and len(err) == 1
    assert f"for the format use --format {fmt} (or -o ./{fmt} for a file of that name)" in err[0]
    assert list(tmp_path.iterdir()) == []  # before: exit 0 and a text report in ./json


def test_admit_o_with_a_path_still_writes_that_file(
    in_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    manifests = str(in_repo / "examples" / "mesh")
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(capsys, "admit", "-f", manifests, "-o", "./json", "--format", "json")
    assert code == 0 and (tmp_path / "json").read_text().startswith("{")


# --- counted in words -------------------------------------------------------------------------


def test_admit_summary_of_one_object_is_singular(in_repo: Path, capsys: Capsys) -> None:
    code, _, err = run(capsys, "admit", "-f", LEGACY_SPLIT)
    assert code == 0
    assert err[-1] == (
        "smictl admit: ok: 1 object (1 allowed, 0 denied, 0 invalid), 1 warning, 6 policies"
    )


def test_admit_summary_of_one_policy_is_singular(
    in_repo: Path, tmp_path: Path, capsys: Capsys
) -> None:
    policy = tmp_path / "org" / "one" / "policy.rego"
    policy.parent.mkdir(parents=True)
    policy.write_text(
        "# METADATA\n# title: one\n# custom:\n#   code: T0001\n#   enforcement: deny\n"
        "package org.one\n\n"
        'violation contains {"msg": "no"} if { input.hub.kind == "Nothing" }\n'
    )
    args = ("admit", "-f", "examples/mesh", "--no-shipped-policies", "--policies", str(tmp_path))
    code, _, err = run(capsys, *args)
    assert code == 0 and err[-1].endswith(", 0 warnings, 1 policy")


# --- an empty --policies DIR ------------------------------------------------------------------


def test_an_empty_policies_dir_is_a_warning_in_admit_and_policy_list(
    in_repo: Path, tmp_path: Path, capsys: Capsys
) -> None:
    empty = tmp_path / "org-policies"
    empty.mkdir()
    (empty / "lib_test.rego").write_text("package org.lib_test\n")  # tests are no policy
    warning = f"warning: --policies {empty}: no .rego policy files"
    code, _, err = run(capsys, "admit", "-f", LEGACY_SPLIT, "--policies", str(empty))
    assert code == 0 and err[0] == warning
    code, out, err = run(capsys, "policy", "list", "--policies", str(empty))
    assert code == 0 and err == [warning] and len(out.splitlines()) == 6
    code, out, err = run(
        capsys, "policy", "list", "--no-shipped-policies", "--policies", str(empty)
    )
    assert (code, out, err) == (0, "", [warning, "no policies"])


def test_a_policies_dir_that_gives_a_policy_is_not_warned_about(
    in_repo: Path, capsys: Capsys
) -> None:
    args = ("--no-shipped-policies", "--policies", "policies/admission/meta")
    code, _, err = run(capsys, "admit", "-f", LEGACY_SPLIT, *args)
    assert code == 0 and len(err) == 1 and err[0].startswith("smictl admit: ok:")
    assert run(capsys, "policy", "list", *args)[2] == []


# --- help on every flag -----------------------------------------------------------------------


def _sub(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize(
    "command",
    [
        ("validate",),
        ("version",),
        ("access-matrix",),
        ("admit",),
        ("policy", "list"),
        ("policy", "test"),
        ("conformance", "run"),
        ("conformance", "list"),
    ],
    ids=" ".join,
)
def test_every_flag_has_help(command: tuple[str, ...]) -> None:
    parser = _sub(build_parser(command[0]), *command)
    bare = [a.option_strings or [a.dest] for a in parser._actions if not a.help]
    assert bare == []


def test_help_says_what_each_flag_does_for_its_own_command(capsys: Capsys) -> None:
    listing = _sub(build_parser("conformance"), "conformance", "list")
    [scenario] = [a for a in listing._actions if "--scenario" in a.option_strings]
    assert scenario.help is not None and "to list" in scenario.help  # list runs nothing
    with pytest.raises(SystemExit):
        main(["access-matrix", "--help"])
    assert "(default: md)" in " ".join(capsys.readouterr().out.split())


# --- the examples and the README --------------------------------------------------------------


def test_the_example_mesh_is_admitted_without_a_warning(in_repo: Path, capsys: Capsys) -> None:
    code, out, err = run(capsys, "admit", "-f", "examples/mesh")
    assert (code, out) == (0, "")  # before: one owner-label warning (SMI5105) per object
    assert err == [
        "smictl admit: ok: 7 objects (7 allowed, 0 denied, 0 invalid), 0 warnings, 6 policies"
    ]


def test_the_readme_names_demo_files_that_apply_together(in_repo: Path, capsys: Capsys) -> None:
    readme = " ".join((in_repo / "README.md").read_text().split())
    match = re.search(r"`smictl apply ((?:-f examples/demo/\S+ ?)+)`", readme)
    assert match is not None, "the README says what of examples/demo to apply"
    argv = match[1].split()
    assert run(capsys, "validate", *argv)[0] == 0
    assert run(capsys, "validate", "-f", "examples/demo")[0] == 1  # why not the directory


def test_the_license_is_an_spdx_string_that_the_build_setuptools_reads() -> None:
    """The table form made setuptools 77+ print a deprecation banner twice per install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    [setuptools] = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools == "setuptools>=77"

"""Input that holds no object, through `smi.cli.main`, command by command.

`helm template ... | smictl compile -f - > policy.json` whose first stage printed nothing used to
print a MeshPolicy that denies every request (exit 0); `validate` and `admit` passed the same
nothing. Every command that reads manifests now refuses an input without any object (SMI1012,
one line, nothing on standard output), as `kubectl apply` does; `compile`, `explain` and
`access-matrix` also refuse one without SMI objects, while `validate` and `admit` pass it.
Also here: files named like manifests in a directory that are not regular files (a FIFO)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smi.cli import main
from smi.codes import CODES
from smi.loading import load_paths

Capsys = pytest.CaptureFixture[str]
TT = """\
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  rules:
  - {kind: TCPRoute, name: db}
  sources:
  - {kind: ServiceAccount, name: web, namespace: shop}
"""
TCP_ROUTE = """\
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: db, namespace: shop}
spec: {matches: {ports: [5432]}}
"""
NOT_SMI = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
"""
NO_OBJECTS = "no objects: empty or only comments and '---'"
NOTHING_COMPILED = "nothing compiled: a policy without SMI objects denies every request (SMI1012)"
# The commands that produce something from the manifests, with the flags they need besides -f.
PRODUCERS = {
    "compile": [],
    "access-matrix": [],
    "explain": ["--from", "shop/web", "--to", "shop/api", "--port", "80"],
    "convert": ["--to", "split.smi-spec.io/v1alpha4"],
}


def run(capsys: Capsys, *argv: str) -> tuple[int, str, list[str]]:
    """Exit code, standard output, and the lines of standard error."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err
    return code, out, err.splitlines()


def stdin(monkeypatch: pytest.MonkeyPatch, data: str) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data.encode()), "utf-8"))


# How an input without objects is given: (argv after -f, the name the problem is reported at).
Given = Callable[[pytest.MonkeyPatch, Path], tuple[str, str]]


def _empty_stdin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[str, str]:
    stdin(monkeypatch, "")
    return "-", "<stdin>"


def _comments_stdin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[str, str]:
    stdin(monkeypatch, "---\n# nothing rendered\n---\n")
    return "-", "<stdin>"


def _empty_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "empty.yaml").write_text("")
    return str(tmp_path / "empty.yaml"), str(tmp_path / "empty.yaml")


def _null_documents(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "nulls.yaml").write_text("# header\n---\nnull\n---\n~\n")
    return str(tmp_path / "nulls.yaml"), str(tmp_path / "nulls.yaml")


def _blank_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "blank.json").write_text(" \n\n")
    return str(tmp_path / "blank.json"), str(tmp_path / "blank.json")


INPUTS: dict[str, Given] = {
    "empty-stdin": _empty_stdin,
    "comments-stdin": _comments_stdin,
    "empty-file": _empty_file,
    "null-documents": _null_documents,
    "blank-json": _blank_json,
}


# --- commands that produce something: refuse, one line, nothing on standard output ----------


@pytest.mark.parametrize("given", INPUTS.values(), ids=INPUTS.keys())
@pytest.mark.parametrize("command", PRODUCERS)
def test_producers_refuse_an_input_without_objects(
    command: str, given: Given, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Capsys
) -> None:
    path, name = given(monkeypatch, tmp_path)
    code, out, err = run(capsys, command, "-f", path, *PRODUCERS[command])
    assert (code, out) == (1, "")
    then = "nothing to convert (SMI1012)" if command == "convert" else NOTHING_COMPILED
    assert err == [f"{name}: {NO_OBJECTS}; {then}"]


def test_compile_refuses_a_directory_whose_files_hold_nothing(
    tmp_path: Path, capsys: Capsys
) -> None:
    """The files are all there, each empty: the directory check (SMI1001) passed them."""
    (tmp_path / "a.yaml").write_text("# rendered nothing\n")
    (tmp_path / "b.json").write_text("")  # was `invalid JSON: Expecting value (SMI1002)`
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yml").write_text("---\n---\n")
    code, out, err = run(capsys, "compile", "-f", str(tmp_path))
    assert (code, out) == (1, "")
    assert err == [
        f"{tmp_path}: no objects in 3 files: each empty or only comments and '---'; "
        + NOTHING_COMPILED
    ]


def test_several_empty_paths_are_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Capsys
) -> None:
    stdin(monkeypatch, "")
    (tmp_path / "a.yaml").write_text("")
    code, out, err = run(capsys, "compile", "-f", str(tmp_path / "a.yaml"), "-f", "-")
    assert (code, out) == (1, "")
    assert err == [
        f"no objects in {tmp_path / 'a.yaml'}, <stdin> (2 files): each empty or only comments "
        "and '---'; " + NOTHING_COMPILED
    ]


def test_an_empty_list_holds_no_objects(tmp_path: Path, capsys: Capsys) -> None:
    (tmp_path / "list.yaml").write_text("apiVersion: v1\nkind: List\nitems: []\n")
    code, out, err = run(capsys, "compile", "-f", str(tmp_path / "list.yaml"))
    assert (code, out) == (1, "")
    assert err == [f"{tmp_path / 'list.yaml'}: {NO_OBJECTS}; {NOTHING_COMPILED}"]


@pytest.mark.parametrize("command", ["compile", "access-matrix", "explain"])
def test_policy_commands_refuse_input_without_smi_objects(
    command: str, tmp_path: Path, capsys: Capsys
) -> None:
    """Services alone compile to a policy with no TrafficTarget: it denies every request."""
    path = tmp_path / "services.yaml"
    path.write_text(NOT_SMI)
    code, out, err = run(capsys, command, "-f", str(path), *PRODUCERS[command])
    assert (code, out) == (1, "")
    assert err == [
        f"{path}: no SMI objects, only 2 objects of other kinds; " + NOTHING_COMPILED,
    ]


def test_an_empty_file_beside_smi_objects_is_no_problem(tmp_path: Path, capsys: Capsys) -> None:
    """What counts is the whole input, as for kubectl: an empty file among others is fine."""
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "tt.yaml").write_text(TT + "---\n" + TCP_ROUTE)
    code, out, err = run(capsys, "compile", "-f", str(tmp_path))
    assert (code, err) == (0, [])
    assert list(json.loads(out)["destinations"]) == ["spiffe://cluster.local/ns/shop/sa/api"]


def test_convert_tells_no_objects_from_no_object_of_its_group(
    tmp_path: Path, capsys: Capsys
) -> None:
    """SMI4003 stays for objects of other groups; an empty file was reported the same way."""
    services, empty = tmp_path / "services.yaml", tmp_path / "empty.yaml"
    services.write_text(NOT_SMI)
    empty.write_text("# rendered nothing\n")
    argv = ["convert", *PRODUCERS["convert"], "-f"]
    assert run(capsys, *argv, str(services)) == (
        1,
        "",
        [f"{services}: no split.smi-spec.io object to convert (SMI4003)"],
    )
    assert run(capsys, *argv, str(empty)) == (
        1,
        "",
        [f"{empty}: {NO_OBJECTS}; nothing to convert (SMI1012)"],
    )


# --- checking commands: nothing at all fails; objects that are not SMI pass -------------------


@pytest.mark.parametrize("given", INPUTS.values(), ids=INPUTS.keys())
def test_validate_fails_an_input_without_objects(
    given: Given, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Capsys
) -> None:
    path, name = given(monkeypatch, tmp_path)
    code, out, err = run(capsys, "validate", "-f", path)
    assert code == 1
    assert out.splitlines() == [f"{name}: {NO_OBJECTS} (SMI1012)"]
    assert err == ["INVALID: 0 SMI objects in 1 file; 1 error, 0 warnings"]


def test_validate_json_carries_the_problem(monkeypatch: pytest.MonkeyPatch, capsys: Capsys) -> None:
    stdin(monkeypatch, "")
    code, out, _ = run(capsys, "validate", "-f", "-", "-o", "json")
    doc = json.loads(out)
    assert (code, doc["valid"], doc["errors"]) == (1, False, 1)
    assert [(d["code"], d["file"]) for d in doc["diagnostics"]] == [("SMI1012", "<stdin>")]


@pytest.mark.parametrize("given", INPUTS.values(), ids=INPUTS.keys())
def test_admit_fails_an_input_without_objects(
    given: Given, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Capsys
) -> None:
    path, name = given(monkeypatch, tmp_path)
    code, out, err = run(capsys, "admit", "-f", path, "--no-shipped-policies")
    assert code == 1
    assert out.splitlines() == [f"{name}: {NO_OBJECTS} (SMI1012)"]
    assert err[-1].startswith("smictl admit: FAILED: 0 objects (")
    assert "1 load error)" in err[-1]


def test_admit_json_report_names_the_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    stdin(monkeypatch, "# nothing\n")
    code, out, _ = run(capsys, "admit", "-f", "-", "--no-shipped-policies", "--format", "json")
    doc = json.loads(out)
    assert (code, doc["ok"]) == (1, False)
    assert [(d["code"], d["file"]) for d in doc["load"]] == [("SMI1012", "<stdin>")]


@pytest.mark.parametrize("command", ["validate", "admit"])
def test_checks_pass_objects_that_are_not_smi_but_not_nothing(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Capsys
) -> None:
    """A CI job that validates every manifest of a repository may meet a directory without
    SMI objects: it is checked (the skipped kind is reported) and passes. The same job fed
    nothing at all fails."""
    path = tmp_path / "app.yaml"
    path.write_text(NOT_SMI)
    extra = ["--no-shipped-policies"] if command == "admit" else []
    code, out, err = run(capsys, command, "-f", str(path), *extra)
    assert code == 0
    skipped = f"{path}:6: warning: skipped v1 ConfigMap: not an SMI resource or a context object"
    assert out.splitlines() == [f"{skipped} (SMI1008)"]
    if command == "validate":
        assert err == ["valid: 0 SMI objects in 1 file; 0 errors, 1 warning"]
    else:
        assert err[-1].startswith("smictl admit: ok: 0 objects (")
    stdin(monkeypatch, "---\n")
    code, out, _ = run(capsys, command, "-f", "-", *extra)
    assert (code, out.splitlines()) == (1, [f"<stdin>: {NO_OBJECTS} (SMI1012)"])


def test_an_empty_directory_and_a_directory_of_empty_files(tmp_path: Path, capsys: Capsys) -> None:
    """A directory without manifests is a problem of its path (SMI1001, as before, with no
    SMI1012 added); one whose manifests are all empty holds no objects (SMI1012)."""
    code, out, _ = run(capsys, "validate", "-f", str(tmp_path))
    assert (code, out.splitlines()) == (
        1,
        [f"{tmp_path}: directory holds no .yaml, .yml or .json files (SMI1001)"],
    )
    (tmp_path / "a.yaml").write_text("")
    (tmp_path / "b.json").write_text("\n")
    code, out, _ = run(capsys, "validate", "-f", str(tmp_path))
    assert (code, out.splitlines()) == (
        1,
        [f"{tmp_path}: no objects in 2 files: each empty or only comments and '---' (SMI1012)"],
    )


def test_explain_code_knows_smi1012(capsys: Capsys) -> None:
    assert "SMI1012" in CODES
    code, out, _ = run(capsys, "explain-code", "SMI1012")
    assert code == 0
    assert out.splitlines()[0] == "SMI1012: no objects in the input"
    assert "as `kubectl apply` does" in " ".join(out.split())


# --- a directory's entries that are not regular files --------------------------------------------


@pytest.fixture
def special_files(tmp_path: Path) -> Iterator[Path]:
    """A directory with one valid manifest, a FIFO, a symlink to it, a socket (all named like
    manifests), and a FIFO and a symlinked directory that are not."""
    root = tmp_path / "manifests"
    root.mkdir()
    (root / "tt.yaml").write_text(TT + "---\n" + TCP_ROUTE)
    os.mkfifo(root / "rendered.yaml")
    (root / "link.yml").symlink_to("rendered.yaml")
    os.mkfifo(root / "notes.txt")
    (tmp_path / "elsewhere").mkdir()
    (root / "dir.yaml").symlink_to(tmp_path / "elsewhere")  # not entered: a warning (SMI1014)
    sock = socket.socket(socket.AF_UNIX)
    sock_path = root / "s.json"
    sock.bind(str(sock_path))
    try:
        yield root
    finally:
        sock.close()


def test_a_fifo_in_a_directory_is_reported_never_opened(special_files: Path) -> None:
    """Run as a process with a timeout: opening the FIFO would wait for a writer forever."""
    done = subprocess.run(
        [sys.executable, "-m", "smi.cli", "validate", "-f", str(special_files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    not_regular = "not a regular file (in a directory only regular files are read"
    assert done.stdout.splitlines() == [
        f"{special_files}/dir.yaml: warning: symbolic link to a directory, not entered (name it "
        "with -f to read it) (SMI1014)",
        f"{special_files}/link.yml: cannot read: a FIFO, {not_regular}; name it with -f to read "
        "it) (SMI1001)",
        f"{special_files}/rendered.yaml: cannot read: a FIFO, {not_regular}; name it with -f to "
        "read it) (SMI1001)",
        f"{special_files}/s.json: cannot read: a socket, {not_regular}) (SMI1001)",
    ]
    assert done.stderr == "INVALID: 2 SMI objects in 1 file; 3 errors, 1 warning\n"


def test_the_loader_lists_special_files_without_opening_them(special_files: Path) -> None:
    loaded = load_paths([str(special_files)])
    assert loaded.files == [f"{special_files}/tt.yaml"]
    assert [(d.file, d.code) for d in loaded.diagnostics] == [
        (f"{special_files}/dir.yaml", "SMI1014"),
        (f"{special_files}/link.yml", "SMI1001"),
        (f"{special_files}/rendered.yaml", "SMI1001"),
        (f"{special_files}/s.json", "SMI1001"),
    ]


def test_a_fifo_named_with_f_is_read(tmp_path: Path, capsys: Capsys) -> None:
    """`-f <(helm template ...)` names a pipe: that one is read, as asked; the same FIFO found
    in a directory is reported (and not opened)."""
    fifo = tmp_path / "rendered.yaml"
    os.mkfifo(fifo)
    found = load_paths([str(tmp_path)]).diagnostics
    assert [(d.file, d.message.partition(",")[0]) for d in found] == [
        (str(fifo), "cannot read: a FIFO")
    ]

    def write() -> None:
        with fifo.open("w") as f:  # waits for the reader
            f.write(TT + "---\n" + TCP_ROUTE)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        code, _, err = run(capsys, "validate", "-f", str(fifo))
    finally:
        # Let a writer go that no reader came for (the test fails above, it must not hang).
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(timeout=10)
    assert (code, err) == (0, ["valid: 2 SMI objects in 1 file; 0 errors, 0 warnings"])

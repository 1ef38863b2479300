""".rego files are read as manifests are (`smi.sources`): a byte-order mark dropped, text that
is not UTF-8 one `file:line: cannot read: ...` line naming the file as found, at most 64 MiB;
in a directory only regular files are opened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from policy_types import RunCli

from smi.errors import PolicyError
from smi.policy.modules import read_modules
from smi.sources import MAX_FILE_BYTES

TEST_MODULE = "package acme.t_test\n\nimport rego.v1\n\n# café\ntest_ok if {\n\t1 == 1\n}\n"


def _problem(root: Path) -> str:
    with pytest.raises(PolicyError) as exc:
        read_modules([root])
    [problem] = exc.value.diagnostics
    return problem.format()


def test_a_module_with_a_byte_order_mark_is_read(tmp_path: Path, run_cli: RunCli) -> None:
    """The mark hid `package` on line 1: "no `package` declaration (SMI5001)"."""
    (tmp_path / "a_test.rego").write_bytes(b"\xef\xbb\xbf" + TEST_MODULE.encode())
    [module] = read_modules([tmp_path])
    assert module.package == "acme.t_test"
    assert not module.source.startswith("\ufeff")
    code, out, err = run_cli("policy", "test", str(tmp_path))
    assert (code, err) == (0, "")
    assert out.endswith("PASS: 1/1\n")


def test_a_module_that_is_not_utf8_is_named_at_its_line(tmp_path: Path) -> None:
    """It was Python's codec text with a byte offset ("can't decode byte 0xe9 in position
    42"), and no line."""
    root = tmp_path.resolve()
    (root / "a_test.rego").write_bytes(TEST_MODULE.encode("latin-1"))
    assert _problem(root) == f"{root}/a_test.rego:5: cannot read: not UTF-8 text (SMI1001)"


def test_a_utf16_module_is_named_as_such(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "a_test.rego").write_bytes(TEST_MODULE.encode("utf-16"))
    assert _problem(root) == (
        f"{root}/a_test.rego: cannot read: not UTF-8 text (UTF-16, by its byte-order mark: "
        "save it as UTF-8) (SMI1001)"
    )


def test_a_link_that_leads_nowhere_is_named_as_found(tmp_path: Path) -> None:
    """It was named by its target, which the user never wrote, with a raw `[Errno 2]`."""
    root = tmp_path.resolve()
    (root / "x.rego").symlink_to(root / "gone" / "elsewhere.rego")
    assert _problem(root) == f"{root}/x.rego: cannot read: no such file or directory (SMI1001)"


def test_a_linked_directory_among_the_policies_is_an_error(tmp_path: Path) -> None:
    """Not entered (as in manifest directories), and not in silence: its deny policies were
    left out and the run passed."""
    root = tmp_path.resolve()
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "deny.rego").write_text("package x\n", encoding="utf-8")
    (root / "policies").mkdir()
    (root / "policies" / "shared").symlink_to(root / "elsewhere")
    assert _problem(root / "policies") == (
        f"{root}/policies/shared: symbolic link to a directory, not entered: its policies "
        "would not be loaded (name it with --policies to load them) (SMI1014)"
    )


def test_a_module_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    with (root / "big.rego").open("wb") as f:
        os.truncate(f.fileno(), MAX_FILE_BYTES + 1)  # sparse: nothing written
    assert _problem(root) == f"{root}/big.rego: file larger than 64 MiB (SMI1010)"


NOT_REGULAR = "not a regular file (in a directory only regular files are read) (SMI1001)"


def test_a_fifo_among_the_policies_is_reported_never_opened(tmp_path: Path) -> None:
    """Run as a process with a timeout: `policy list`, `admit --policies` and the webhook's
    load waited for a writer forever."""
    root = tmp_path.resolve()
    (root / "acme" / "x").mkdir(parents=True)
    (root / "acme" / "x" / "a_test.rego").write_text(TEST_MODULE)
    os.mkfifo(root / "acme" / "x" / "extra.rego")
    argv = ["policy", "list", "--no-shipped-policies", "--policies", str(root)]
    done = subprocess.run(
        [sys.executable, "-m", "smi.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"{root}/acme/x/extra.rego: cannot read: a FIFO, {NOT_REGULAR}\n"


def test_a_link_to_a_device_among_the_policies_is_never_opened(tmp_path: Path) -> None:
    """A link to /dev/zero was read without end (MemoryError, an internal error)."""
    root = tmp_path.resolve()
    (root / "z.rego").symlink_to("/dev/zero")
    assert _problem(root) == f"{root}/z.rego: cannot read: a character device, {NOT_REGULAR}"


@pytest.mark.parametrize("command", [["policy", "test"], ["policy", "list", "--policies"]])
def test_a_fifo_named_as_a_policy_is_refused_as_not_regular(
    tmp_path: Path, command: list[str]
) -> None:
    """It was "no such policy directory or file (SMI5010)", of a path that is there."""
    fifo = tmp_path.resolve() / "x.rego"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "smi.cli", *command, str(fifo)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"{fifo}: cannot read: a FIFO, not a regular file (policies are read from regular "
        "files) (SMI1001)\n"
    )


def test_a_device_named_as_a_policy_is_never_opened(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as exc:
        read_modules(["/dev/zero"])
    [problem] = exc.value.diagnostics
    assert problem.format() == (
        "/dev/zero: cannot read: a character device, not a regular file (policies are read "
        "from regular files) (SMI1001)"
    )

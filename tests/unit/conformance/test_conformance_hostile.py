"""The conformance suite used the way a hurried mesh implementer uses it: mistyped options,
unwritable report directories, odd file names, a port already taken, two suites at once, a
server that never answers, and runs stopped by signals. Each case ends with a clear line and a
non-zero exit, nothing left running, and every wait bounded."""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conformance_fakes import FakeTarget

from conformance.__main__ import main
from conformance.interrupts import Interrupted, signals_held, stop_on_signals
from conformance.model import Scenario
from conformance.reports import render_junit
from conformance.results import Check, RunResult, ScenarioResult, StepResult
from conformance.runner import run
from conformance.targets import mesh as mesh_module
from conformance.targets.base import TargetError
from conformance.targets.controlplane import ControlPlane
from conformance.targets.mesh import Mesh, Slot
from conformance.targets.processes import Child, spawn, wait_for
from conformance.targets.webhook import WebhookTarget

REPO = Path(__file__).resolve().parents[3]
# Passes in process: no step expects what only a proxy can show (the caller identity).
SCENARIO = "access/path-matching.access-v1alpha3.specs-v1alpha4"


def _pids_mentioning(marker: str, *, besides: int = 0) -> list[int]:
    """Processes other than `besides` whose command line holds `marker` (a path unique to
    one test)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == besides:
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
    return pids


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _gone_within(marker: str, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _pids_mentioning(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


# --- usage mistakes --------------------------------------------------------------------------


def test_missing_scenario_directory_is_named_not_reported_as_no_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--dir", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"smictl conformance: --dir {tmp_path / 'nope'}: no such directory"


def test_unusable_report_directory_fails_before_running_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    code = main(["run", "--scenario", SCENARIO, "--report", str(blocker / "out")])
    out, err = capsys.readouterr()
    assert code == 2
    assert "scenarios on" not in out  # refused before the run, not after it
    assert err.startswith(f"smictl conformance: --report {blocker / 'out'}: cannot create")
    assert len(err.strip().splitlines()) == 1


def test_a_report_that_cannot_be_written_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import conformance.reports

    def full(*_: Any) -> dict[str, Path]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(conformance.reports, "write_reports", full)
    code = main(["run", "--scenario", SCENARIO, "--report", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == (
        "smictl conformance: cannot write the reports: [Errno 28] No space left on device"
    )


def test_a_target_named_twice_runs_once(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--target", "inproc,inproc", "--scenario", SCENARIO])
    out = capsys.readouterr().out
    assert code == 0
    assert "1 scenario on inproc\n" in out
    assert out.count(f"PASS inproc   {SCENARIO}") == 1


def test_scenario_file_names_that_are_not_text_are_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (REPO / "conformance" / "scenarios" / f"{SCENARIO}.yaml").read_bytes()
    area = tmp_path / "access"
    area.mkdir()
    for raw in (b"x\xff.yaml", b"y\x1b[31m.yaml"):
        fd = os.open(os.fsencode(area) + b"/" + raw, os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, text)
        os.close(fd)
    code = main(["run", "--dir", str(tmp_path), "--report", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{area}/x\\udcff.yaml: the file name is not valid UTF-8" in err
    assert f"{area}/y\\x1b[31m.yaml: the file name holds control characters" in err


def test_junit_stays_well_formed_with_control_characters_from_the_mesh() -> None:
    step = StepResult(
        0,
        "request",
        "GET /\x07bell",
        "failed",
        (Check("deny reason", "/denied/", "proxy said \x00\x1b[31m\ufffe", ok=False),),
    )
    result = ScenarioResult(
        scenario="access/odd",
        target="proxy",
        description="form\x0cfeed <&>",
        capability="traffic-access/allow",
        smi_versions=("access.smi-spec.io/v1alpha3",),
        decisions=(),
        status="failed",
        steps=(step,),
    )
    run_result = RunResult(targets=["proxy", "webhook"], started="now", version="0")
    run_result.results.append(result)
    run_result.target_errors["webhook"] = "died with \x01"
    root = ET.fromstring(render_junit(run_result).encode("utf-8"))
    failure = root.find(".//failure")
    assert failure is not None
    assert "proxy said \\x00\\x1b[31m\\ufffe" in failure.get("message", "")
    error = root.find(".//error")
    assert error is not None and error.get("message") == "died with \\x01"


# --- signals ---------------------------------------------------------------------------------


class _StartIsInterrupted(FakeTarget):
    def start(self) -> None:
        super().start()
        raise KeyboardInterrupt


def test_ctrl_c_while_a_target_starts_still_stops_it(
    make_scenario: Callable[..., Scenario],
) -> None:
    target = _StartIsInterrupted()
    with pytest.raises(KeyboardInterrupt):
        run([target], [make_scenario()])
    assert target.calls == ["start", "stop"]


def test_a_second_signal_does_not_cut_the_cleanup_short() -> None:
    cleaned = False
    with pytest.raises(Interrupted) as info, stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # ignored: the cleanup goes on
            time.sleep(0.05)
            cleaned = True
    assert cleaned
    assert info.value.exit_code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored afterwards


def test_a_signal_held_over_a_stretch_takes_effect_when_it_ends() -> None:
    finished = False
    alarm = signal.getsignal(signal.SIGALRM)  # pytest-timeout's
    with pytest.raises(Interrupted) as info, stop_on_signals():
        with signals_held():
            signal.raise_signal(signal.SIGHUP)
            signal.raise_signal(signal.SIGTERM)
            finished = True
        pytest.fail("the held signal was not delivered when the stretch ended")
    assert finished
    assert info.value.exit_code == 128 + signal.SIGHUP  # the first one held
    assert signal.getsignal(signal.SIGALRM) is alarm


def test_a_signal_while_a_server_is_spawned_stops_that_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fork_exec = subprocess._fork_exec  # type: ignore[attr-defined]
    forked: list[int] = []

    def signalled_after_the_fork(*args: Any) -> int:
        forked.append(fork_exec(*args))
        signal.raise_signal(signal.SIGTERM)  # handled here, before Popen has stored the pid
        return forked[-1]

    monkeypatch.setattr(subprocess, "_fork_exec", signalled_after_the_fork)
    try:
        with pytest.raises(Interrupted) as info, stop_on_signals():
            spawn("server", [sys.executable, "-c", "import time; time.sleep(60)"], log_dir=tmp_path)
        assert info.value.exit_code == 128 + signal.SIGTERM
        assert len(forked) == 1
        # Ended and reaped by spawn: no process, not even a zombie, is left under its pid.
        assert not Path(f"/proc/{forked[0]}").exists()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        for pid in forked:
            if Path(f"/proc/{pid}").exists():  # the defect: nobody holds it, so end it here
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


def test_a_signal_while_the_work_directory_is_made_leaves_no_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`WebhookTarget.start` makes its work directory: a signal handled right after
    `mkdtemp`, before the target holds the directory, left it behind."""
    mkdtemp = tempfile.mkdtemp

    def signalled_after_mkdtemp(*args: Any, **kwargs: Any) -> str:
        made = mkdtemp(*args, **kwargs)
        signal.raise_signal(signal.SIGTERM)
        return made

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # (read TMPDIR again)
    monkeypatch.setattr(tempfile, "mkdtemp", signalled_after_mkdtemp)
    with pytest.raises(Interrupted), stop_on_signals(), WebhookTarget():
        pytest.fail("the target started")
    assert list(tmp_path.glob("smictl-conformance-*")) == []


_SLOW_TARGET = """
import sys
import conformance.targets.controlplane as cp
# A control plane that never listens: the run waits in start() when the signal comes.
cp.LAUNCH = [sys.executable, "-c", "import time; time.sleep(120)", {marker!r}]
from conformance.__main__ import main
sys.exit(main(["run", "--target", "webhook", "--scenario", {scenario!r}]))
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_stops_every_child_and_removes_the_work_directory(
    tmp_path: Path, sig: signal.Signals
) -> None:
    marker = str(tmp_path / "marker")
    script = _SLOW_TARGET.format(marker=marker, scenario=SCENARIO)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not _pids_mentioning(marker, besides=proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _pids_mentioning(marker, besides=proc.pid), "the fake control plane never started"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 128 + sig
        assert err.strip() == (
            f"smictl conformance: interrupted by {sig.name}; every process it started was stopped"
        )
        assert _gone_within(marker, 5) == []
        assert list(tmp_path.glob("smictl-conformance-*")) == []
    finally:
        proc.kill()
        proc.communicate(timeout=10)
        _kill(_pids_mentioning(marker))


_ORPHANING_PARENT = """
import sys, time
from pathlib import Path
from conformance.targets.processes import spawn
code = "from conformance.targets.launch import die_with_parent as d; d(); "
code += "import time; time.sleep(60)"
spawn("orphan", [sys.executable, "-c", code, {marker!r}], log_dir=Path({logs!r}))
time.sleep(60)
"""


@pytest.mark.timeout(60)
def test_launched_servers_die_with_a_suite_that_was_killed(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    script = _ORPHANING_PARENT.format(marker=marker, logs=str(tmp_path))
    parent = subprocess.Popen([sys.executable, "-c", script, "parent"], cwd=REPO)
    try:
        deadline = time.monotonic() + 20
        while not _pids_mentioning(marker, besides=parent.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _pids_mentioning(marker, besides=parent.pid)
        time.sleep(1.0)  # the child is past its imports and has asked for the signal
        parent.kill()  # SIGKILL: no cleanup of the suite runs
        parent.wait(timeout=10)
        assert _gone_within(marker, 10) == []
    finally:
        parent.kill()
        parent.wait(timeout=10)
        _kill(_pids_mentioning(marker))


# --- bounded waits and stopping ---------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conns.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for c in conns:
        c.close()
    server.close()


@pytest.mark.timeout(60)
def test_readiness_wait_is_bounded_when_the_server_never_answers(
    tmp_path: Path, silent_server: int
) -> None:
    plane = ControlPlane(tmp_path)
    plane.url = f"https://127.0.0.1:{silent_server}"
    plane._ssl = ssl.create_default_context()
    t0 = time.monotonic()
    with pytest.raises(TargetError, match=r"timed out after 1 s waiting for readiness$"):
        wait_for(plane._ready, what="readiness", timeout=1.0)
    assert time.monotonic() - t0 < 10  # was 60 s: two 30 s attempts inside one probe
    plane.close()


@pytest.mark.timeout(60)
def test_control_plane_metrics_live_in_the_work_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import conformance.targets.controlplane as cp

    seen = tmp_path / "seen"
    code = (
        "import os, pathlib; "
        f"pathlib.Path({str(seen)!r}).write_text(os.environ.get('PROMETHEUS_MULTIPROC_DIR', ''))"
    )
    monkeypatch.setattr(cp, "LAUNCH", [sys.executable, "-c", code])
    plane = ControlPlane(tmp_path / "work")
    with pytest.raises(TargetError, match=r"exited \(code 0\) before the control plane to listen"):
        plane.start(timeout=10)
    plane.stop()
    assert seen.read_text() == str(tmp_path / "work" / "metrics")


def test_a_child_that_will_not_die_does_not_stop_the_cleanup(tmp_path: Path) -> None:
    class Unkillable:
        pid = 2**22 + 12345  # no such process group: the signals go nowhere
        returncode = None

        def poll(self) -> None:
            return None

        def wait(self, timeout: float | None = None) -> int:
            raise subprocess.TimeoutExpired("unkillable", timeout or 0)

    child = Child(name="stuck", proc=Unkillable(), log=tmp_path / "stuck.log")  # type: ignore[arg-type]
    t0 = time.monotonic()
    child.stop(grace=0.1)  # returns instead of raising TimeoutExpired
    assert time.monotonic() - t0 < 5


def test_timeout_message_has_no_empty_log_sections(tmp_path: Path) -> None:
    child = spawn("quiet", [sys.executable, "-c", "import time; time.sleep(30)"], log_dir=tmp_path)
    try:
        with pytest.raises(TargetError) as info:
            wait_for(lambda: None, what="nothing", timeout=0.2, watch=[child])
    finally:
        child.stop(grace=2)
    assert str(info.value) == "timed out after 0.2 s waiting for nothing"


# --- ports taken, two suites at once ------------------------------------------------------------


def _app_answers(address: str, port: int) -> str:
    conn = http.client.HTTPConnection(address, port, timeout=5)
    try:
        conn.request("GET", "/")
        return conn.getresponse().getheader(mesh_module.APP_MARK) or ""
    finally:
        conn.close()


@pytest.fixture
def mesh_without_proxies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Mesh, list[Slot]]]:
    """A Mesh whose proxies are not started (the apps are real); records each start."""
    started: list[Slot] = []
    monkeypatch.setattr(Mesh, "_start_proxy", lambda self, slot: started.append(slot))
    mesh = Mesh(plane=None, workdir=tmp_path)  # type: ignore[arg-type]
    yield mesh, started
    mesh.stop()


def test_an_app_address_in_use_by_another_suite_moves_to_a_free_one(
    mesh_without_proxies: tuple[Mesh, list[Slot]],
) -> None:
    mesh, _ = mesh_without_proxies
    first = f"127.77.0.{mesh._next_ip % 250 + 1}"  # the address the next slot would take
    other_suite = socket.create_server((first, 0))
    port = other_suite.getsockname()[1]
    try:
        slot = mesh.slot("shop/catalog", 0, (port,))
        slot.label = "catalog"
        assert slot.address != first
        assert _app_answers(slot.address, port) == "catalog"
    finally:
        other_suite.close()


def test_a_slot_that_failed_to_start_is_started_again_not_reused(
    mesh_without_proxies: tuple[Mesh, list[Slot]], monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh, started = mesh_without_proxies
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]

    def broken(self: Mesh, slot: Slot) -> None:
        raise TargetError("proxy did not start")

    monkeypatch.setattr(Mesh, "_start_proxy", broken)
    with pytest.raises(TargetError):
        mesh.slot("shop/catalog", 0, (port,))
    assert mesh.slots == {}
    monkeypatch.setattr(Mesh, "_start_proxy", lambda self, slot: started.append(slot))
    slot = mesh.slot("shop/catalog", 0, (port,))
    slot.label = "catalog"
    assert started == [slot]
    assert _app_answers(slot.address, port) == "catalog"


def test_ports_taken_on_every_address_give_one_clear_error(
    mesh_without_proxies: tuple[Mesh, list[Slot]], monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh, _ = mesh_without_proxies
    monkeypatch.setattr(mesh_module, "ADDRESS_ATTEMPTS", 3)
    everywhere = socket.create_server(("0.0.0.0", 0))
    port = everywhere.getsockname()[1]
    try:
        with pytest.raises(TargetError) as info:
            mesh.slot("shop/catalog", 0, (port,))
    finally:
        everywhere.close()
    message = str(info.value)
    assert message.startswith(f"app of shop/catalog cannot listen on ports {port} of any of 3")
    assert f"port {port}: Address already in use" in message
    assert "\n" not in message

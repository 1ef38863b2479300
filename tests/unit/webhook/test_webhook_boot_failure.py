"""A gunicorn worker that cannot build the app (`webhook:create_app()` from SMI_WEBHOOK_*) says
why in one JSON log line and exits with gunicorn's APP_LOAD_ERROR, which halts the master
("App failed to load"). It raised instead: gunicorn logged a 50-line traceback per worker and
"Worker failed to boot". (The preflight of `smictl serve` catches these first; this is for a
file changed after it, or gunicorn started without smictl.)"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from webhook import create_app
from webhook.app import APP_LOAD_ERROR

BROKEN = "package b.syn\n\nimport rego.v1\n\nviolation contains msg if {\n\tx := [1, 2\n}\n"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SMI_WEBHOOK_* of a local control plane whose only policy does not parse."""
    policy = tmp_path / "pol" / "b" / "syn" / "policy.rego"
    policy.parent.mkdir(parents=True)
    policy.write_text("# METADATA\n# title: syn\n# custom:\n#   code: B0001\n" + BROKEN)
    monkeypatch.setenv("SMI_WEBHOOK_POLICIES", str(tmp_path / "pol"))
    monkeypatch.setenv("SMI_WEBHOOK_SHIPPED_POLICIES", "false")
    monkeypatch.setenv("SMI_WEBHOOK_STORE", str(tmp_path / "store.db"))
    return policy


def boot_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The reasons logged (`smictl.server`, event boot_failed); none carries a traceback."""
    records = [r for r in caplog.records if r.name == "smictl.server"]
    assert all(r.exc_info is None for r in records)
    fields = [getattr(r, "fields", {}) for r in records if r.levelno == logging.ERROR]
    return [f["error"] for f in fields if f.get("event") == "boot_failed"]


def test_a_policy_that_does_not_parse_is_one_log_line_and_app_load_error(
    env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exited:
        create_app()
    assert exited.value.code == APP_LOAD_ERROR == 4  # gunicorn.arbiter.Arbiter.APP_LOAD_ERROR
    assert boot_failures(caplog) == [f"{env}:10: this is unclosed (SMI5001)"]


def test_bad_parameters_are_one_log_line_too(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env.write_text(env.read_text().replace("\tx := [1, 2\n", '\tmsg := "x"\n'))
    monkeypatch.setenv("SMI_WEBHOOK_PARAMETERS", str(tmp_path / "missing.yaml"))
    with pytest.raises(SystemExit):
        create_app()
    assert boot_failures(caplog) == [
        f"{tmp_path / 'missing.yaml'}: cannot read policy parameters: no such file or directory "
        "(SMI5004)"
    ]


def test_an_app_built_from_given_settings_still_raises(env: Path) -> None:
    """Tests and embedders that pass settings get the error itself, not an exit."""
    from smi.errors import PolicyError
    from webhook.settings import Settings

    with pytest.raises(PolicyError):
        create_app(Settings.from_env())

"""`smictl explain` says what it means. Without a request it printed `ALLOW ...: anything on
port 9090` and then "not any traffic", so a script reading the headline saw an unrestricted
allow; a typo in `--to` got "--port is needed" with no word about the name; a protocol deny
said "but ... but"; and a path an application may read another way got "closest match: public
()", naming the match that took the path with an empty reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from compiler_fixtures import RunCli

MESH = "examples/mesh"
WEB_TO_API = ("explain", "-f", MESH, "--from", "shop/web", "--to", "shop/api")

ROUTES = """
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: web-to-api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  sources: [{kind: ServiceAccount, name: web, namespace: shop}]
  rules: [{kind: HTTPRouteGroup, name: routes}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: shop}
spec:
  matches:
  - {name: public, pathRegex: /public/.*}
  - {name: any, pathRegex: /any}
  - {name: api, pathRegex: /api(/.*)?}
"""


@pytest.fixture
def in_repo(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(repo_root)
    return repo_root


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES, encoding="utf-8")
    return path


def ask_routes(run_cli: RunCli, routes: Path, path: str) -> tuple[int, str]:
    code, out, err = run_cli(
        "explain", "-f", str(routes), "--from", "shop/web", "--to", "shop/api", "--port", "8080",
        "--method", "GET", "--path", path,
    )  # fmt: skip
    assert err == ""
    return code, out


def test_without_a_request_the_headline_says_only_some_requests_pass(
    run_cli: RunCli, in_repo: Path
) -> None:
    code, out, err = run_cli(*WEB_TO_API)
    assert (code, err) == (0, "")
    verdict = [line for line in out.splitlines() if line.startswith(("ALLOW", "DENY"))]
    assert verdict == ["ALLOW shop/web -> shop/api: some HTTP requests on port 9090 (listed below)"]
    assert "anything" not in out
    assert (
        "  only these HTTP requests; any other request, and traffic that is not HTTP, is denied:\n"
        "    GET|HEAD /books(/.*)?$  (books, shop/TrafficTarget/web-to-api)\n"
    ) in out


def test_a_tcp_route_is_still_anything(run_cli: RunCli, in_repo: Path) -> None:
    code, out, _ = run_cli("explain", "-f", MESH, "--from", "shop/api", "--to", "shop/db")
    assert code == 0
    assert "ALLOW shop/api -> shop/db: anything on port 5432\n" in out


def test_a_typo_in_to_is_named_with_the_close_names(run_cli: RunCli, in_repo: Path) -> None:
    code, out, err = run_cli("explain", "-f", MESH, "--from", "shop/web", "--to", "shop/apii")
    assert (code, out) == (2, "")
    assert err == (
        "smictl explain: --port is needed: no Service shop/apii in the files (did you mean "
        "shop/api, shop/api-v2 or shop/api-v1?), so --to is taken as a ServiceAccount, which has "
        "no ports (SMI2002)\n"
    )
    code, _, err = run_cli("explain", "-f", MESH, "--from", "shop/web", "--to", "shop/nonexist")
    assert code == 2
    assert err == (
        "smictl explain: --port is needed: no Service shop/nonexist in the files, so --to is "
        "taken as a ServiceAccount, which has no ports (SMI2002)\n"
    )


def test_a_service_account_the_policy_names_gets_no_suggestion(
    run_cli: RunCli, in_repo: Path
) -> None:
    # shop/prometheus is a source of a TrafficTarget, and close to no Service's name either
    code, _, err = run_cli("explain", "-f", MESH, "--from", "shop/web", "--to", "shop/prometheus")
    assert code == 2
    assert "did you mean" not in err and "no Service shop/prometheus in the files" in err


def test_a_protocol_deny_is_one_objection(run_cli: RunCli, in_repo: Path) -> None:
    code, out, _ = run_cli(*WEB_TO_API, "--protocol", "tcp")
    assert code == 1
    assert out == (
        "shop/api: TrafficSplit shop/TrafficSplit/api-canary does not apply to tcp traffic: it "
        "splits only HTTP requests\n"
        "shop/api: selects ServiceAccount(s) shop/api\n"
        "DENY shop/web -> shop/api: tcp to port 9090\n"
        "  source in sources (shop/TrafficTarget/web-to-api), but on port 9090 its rules allow "
        "only HTTP requests, not tcp traffic\n"
        "  its rules cover: http on every port\n"
    )


@pytest.mark.parametrize(
    ("path", "reading"),
    [("/public/..%2fadmin/x", "/admin/x"), ("/public/..;/admin", "/admin")],
)
def test_a_path_read_another_way_names_the_reading_and_the_match(
    run_cli: RunCli, routes: Path, path: str, reading: str
) -> None:
    assert ask_routes(run_cli, routes, path) == (
        1,
        f"DENY shop/web -> shop/api: GET {path} on port 8080\n"
        f"  source in sources (shop/TrafficTarget/web-to-api) but no match for GET {reading} "
        f"(as an application may read {path})\n"
        f"  match public takes {path} as written, but a request is allowed only if every "
        "reading of its path is\n",
    )


def test_a_path_no_match_takes_as_written_is_the_miss(run_cli: RunCli, routes: Path) -> None:
    """Its readings are not what failed: the path as written is."""
    code, out = ask_routes(run_cli, routes, "/x/..%2fadmin")
    assert code == 1
    assert out.endswith("no match for GET /x/..%2fadmin; closest match: any (needs path /any)\n")


def test_the_closest_match_says_what_it_needs_and_prefers_a_case_slip(
    run_cli: RunCli, routes: Path
) -> None:
    code, out = ask_routes(run_cli, routes, "/API")
    assert code == 1
    assert out.endswith(
        "no match for GET /API; closest match: api (needs path /api(/.*)?, and paths are "
        "case-sensitive)\n"
    )
    code, out = ask_routes(run_cli, routes, "/nowhere")
    assert code == 1
    # a match named `any` no longer reads as "any match": "(needs ...)" says what it lacks
    assert out.endswith("no match for GET /nowhere; closest match: any (needs path /any)\n")


def test_the_readme_shows_what_explain_prints(run_cli: RunCli, in_repo: Path) -> None:
    readme = (in_repo / "README.md").read_text(encoding="utf-8")
    sessions = [
        chunk
        for block in re.findall(r"```console\n(.*?)```", readme, re.S)
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]
        if chunk.startswith("smictl explain ")
    ]
    assert len(sessions) == 2
    for chunk in sessions:
        command, _, expected = chunk.partition("\n")
        code, out, err = run_cli(*command.split()[1:])
        assert (out + err) == expected, command
        assert code == (1 if re.search(r"^DENY ", expected, re.M) else 0), command


def test_manifest_text_cannot_print_lines_of_its_own(run_cli: RunCli, tmp_path: Path) -> None:
    """A pathRegex or header regex holding a newline is printed escaped: it printed a line
    starting `ALLOW forged line` of its own (validate only warns about such a regex)."""
    path = tmp_path / "nl.yaml"
    path.write_text(
        ROUTES.replace("pathRegex: /public/.*", 'pathRegex: "/p$\\nALLOW forged"').replace(
            "- {name: any, pathRegex: /any}", '- {name: any, headers: [{x-a: "1\\nDENY x"}]}'
        ),
        encoding="utf-8",
    )
    for ask in ((), ("--method", "GET", "--path", "/nothing")):
        _, out, _ = run_cli(
            "explain", "-f", str(path), "--from", "shop/web", "--to", "shop/api", "--port", "80",
            *ask,
        )  # fmt: skip
        assert "\\nALLOW forged" in out or "\\nDENY x" in out, out
        for line in out.splitlines():
            assert not line.startswith(("ALLOW forged", "DENY x")), out

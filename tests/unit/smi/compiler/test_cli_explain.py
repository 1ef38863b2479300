"""`smictl explain`: the bookstore-style questions, answered in full sentences."""

from __future__ import annotations

from pathlib import Path

from compiler_fixtures import MANIFESTS, RunCli

BOOKSTORE = str(MANIFESTS / "bookstore")
SPLIT_LINES = (
    "bookstore/bookstore: TrafficSplit bookstore/TrafficSplit/bookstore-split sends this to "
    "bookstore/bookstore-v1 (75%), bookstore/bookstore-v2 (25%)\n"
    "bookstore/bookstore-v1: selects ServiceAccount(s) bookstore/bookstore\n"
    "bookstore/bookstore-v2: selects ServiceAccount(s) bookstore/bookstore\n"
)


def test_allowed_request_names_the_traffic_target_and_match(run_cli: RunCli) -> None:
    code, out, err = run_cli(
        "explain", "-f", BOOKSTORE, "--from", "bookbuyer/bookbuyer", "--to",
        "bookstore/bookstore", "--method", "GET", "--path", "/buy-a-book/new?id=1",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out == SPLIT_LINES + (
        "ALLOW bookbuyer/bookbuyer -> bookstore/bookstore: GET /buy-a-book/new?id=1 on port "
        "14001\n"
        "  allowed by TrafficTarget bookstore/TrafficTarget/bookstore, match buy-a-book "
        "(HTTPRouteGroup bookstore-service-routes)\n"
    )


def test_route_miss_names_the_closest_match(run_cli: RunCli) -> None:
    code, out, _ = run_cli(
        "explain", "-f", BOOKSTORE, "--from", "bookbuyer/bookbuyer", "--to",
        "bookstore/bookstore", "--method", "POST", "--path", "/buy-a-book/new",
    )  # fmt: skip
    assert code == 1
    assert out.endswith(
        "DENY bookbuyer/bookbuyer -> bookstore/bookstore: POST /buy-a-book/new on port 14001\n"
        "  source in sources (bookstore/TrafficTarget/bookstore) but no match for "
        "POST /buy-a-book/new; closest match: buy-a-book (needs method GET)\n"
    )


def test_missing_header_is_the_reason(run_cli: RunCli) -> None:
    code, out, _ = run_cli(
        "explain", "-f", BOOKSTORE, "--from", "bookbuyer/bookbuyer", "--to",
        "bookstore/bookstore", "--method", "GET", "--path", "/books-bought",
        "--header", "User-Agent=go-http-client/1.1",
    )  # fmt: skip
    assert code == 1
    assert "closest match: books-bought (needs header client-app: bookbuyer)" in out
    code, _, _ = run_cli(
        "explain", "-f", BOOKSTORE, "--from", "bookbuyer/bookbuyer", "--to",
        "bookstore/bookstore", "--method", "GET", "--path", "/books-bought",
        "--header", "User-Agent=go-http-client/1.1", "--header", "client-app=bookbuyer",
    )  # fmt: skip
    assert code == 0


def test_caller_not_in_sources(run_cli: RunCli) -> None:
    code, out, _ = run_cli(
        "explain", "-f", BOOKSTORE, "--from", "bookthief/bookthief", "--to",
        "bookstore/bookstore", "--method", "GET", "--path", "/buy-a-book/new",
    )  # fmt: skip
    assert code == 1
    assert out.endswith(
        "DENY bookthief/bookthief -> bookstore/bookstore: GET /buy-a-book/new on port 14001\n"
        "  bookthief/bookthief is not in the sources of any TrafficTarget for "
        "bookstore/bookstore:\n"
        "    bookstore/TrafficTarget/bookstore allows bookbuyer/bookbuyer\n"
    )


def test_service_account_target_without_traffic_target(run_cli: RunCli) -> None:
    code, out, _ = run_cli(
        "explain", "-f", BOOKSTORE, "--from", "bookstore/bookstore", "--to",
        "bookbuyer/bookbuyer", "--port", "80", "--method", "GET", "--path", "/",
    )  # fmt: skip
    assert code == 1
    assert out == (
        "DENY bookstore/bookstore -> bookbuyer/bookbuyer: GET / on port 80\n"
        "  no TrafficTarget has destination bookbuyer/bookbuyer: default deny\n"
    )


def test_tcp_route_allows_any_traffic_on_its_port(run_cli: RunCli) -> None:
    args = ("explain", "-f", BOOKSTORE, "--from", "bookwarehouse/bookwarehouse", "--to",
            "bookwarehouse/mysql")  # fmt: skip
    code, out, _ = run_cli(*args)
    assert code == 0
    assert out == (
        "bookwarehouse/mysql: selects ServiceAccount(s) bookwarehouse/mysql\n"
        "ALLOW bookwarehouse/bookwarehouse -> bookwarehouse/mysql: anything on port 3306\n"
        "  allowed by TrafficTarget bookwarehouse/TrafficTarget/mysql: its TCPRoute rule opens "
        "port 3306 to any tcp traffic, HTTP included\n"
    )
    code, out, _ = run_cli(*args, "--port", "3307")
    assert code == 1
    assert "but no rule for this source covers port 3307" in out
    assert "its rules cover: tcp on port 3306" in out


def test_what_may_it_do_lists_the_http_routes(run_cli: RunCli) -> None:
    code, out, _ = run_cli(
        "explain", "-f", BOOKSTORE, "--from", "bookbuyer/bookbuyer", "--to", "bookstore/bookstore"
    )
    assert code == 0
    assert out == SPLIT_LINES + (
        "ALLOW bookbuyer/bookbuyer -> bookstore/bookstore: some HTTP requests on port 14001 "
        "(listed below)\n"
        "  only these HTTP requests; any other request, and traffic that is not HTTP, is "
        "denied:\n"
        "    GET /books-bought$ [client-app=~bookbuyer, user-agent=~.*-http-client/.*]  "
        "(books-bought, bookstore/TrafficTarget/bookstore)\n"
        "    GET /buy-a-book/new$  (buy-a-book, bookstore/TrafficTarget/bookstore)\n"
    )


def test_each_identity_behind_a_service_gets_a_verdict(
    run_cli: RunCli, bookstore_dir: Path
) -> None:
    workloads = bookstore_dir / "40-workloads.yaml"
    text = workloads.read_text()
    # the v2 Deployment now runs as its own ServiceAccount, which no TrafficTarget names
    v2 = text.index("name: bookstore-v2, namespace: bookstore}\nspec:\n  selector: {matchLabels")
    head, tail = text[:v2], text[v2:]
    workloads.write_text(
        head + tail.replace("serviceAccountName: bookstore", "serviceAccountName: bookstore-v2", 1)
    )
    code, out, _ = run_cli(
        "explain", "-f", str(bookstore_dir), "--from", "bookbuyer/bookbuyer", "--to",
        "bookstore/bookstore", "--method", "GET", "--path", "/buy-a-book/new",
    )  # fmt: skip
    assert code == 1
    assert "bookstore/bookstore-v2: selects ServiceAccount(s) bookstore/bookstore-v2\n" in out
    assert "ALLOW bookbuyer/bookbuyer -> bookstore/bookstore: GET" in out
    assert (
        "DENY bookbuyer/bookbuyer -> bookstore/bookstore-v2: GET /buy-a-book/new on port 14001\n"
        "  no TrafficTarget has destination bookstore/bookstore-v2: default deny\n"
    ) in out
    assert out.endswith("DENY: 1 of 2 allowed\n")


def test_split_with_matches_that_do_not_apply(run_cli: RunCli, bookstore_dir: Path) -> None:
    (bookstore_dir / "50-ab.yaml").write_text(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n"
        "metadata: {name: firefox, namespace: bookstore}\n"
        "spec:\n  matches:\n  - name: firefox\n    headers: {user-agent: '.*Firefox.*'}\n"
    )
    split = bookstore_dir / "30-split.yaml"
    split.write_text(
        split.read_text().replace(
            "  backends:", "  matches:\n  - kind: HTTPRouteGroup\n    name: firefox\n  backends:"
        )
    )
    code, out, _ = run_cli(
        "explain", "-f", str(bookstore_dir), "--from", "bookbuyer/bookbuyer", "--to",
        "bookstore/bookstore", "--method", "GET", "--path", "/buy-a-book/new",
    )  # fmt: skip
    assert code == 0
    assert out.startswith(
        "bookstore/bookstore: TrafficSplit bookstore/TrafficSplit/bookstore-split does not "
        "apply to this request: none of its matches takes it\n"
        "bookstore/bookstore: selects ServiceAccount(s) bookstore/bookstore\n"
    )


def test_audit_mode_reports_what_deny_mode_would_do(run_cli: RunCli) -> None:
    code, out, _ = run_cli(
        "explain", "-f", BOOKSTORE, "--mode", "audit", "--from", "bookthief/bookthief",
        "--to", "bookstore/bookstore", "--method", "GET", "--path", "/buy-a-book/new",
    )  # fmt: skip
    assert code == 1
    assert "audit mode: this would be denied in deny mode; it is not enforced" in out
    assert out.endswith("note: mode audit: the verdicts above say what deny mode would do\n")


def test_usage_errors_are_one_line(run_cli: RunCli) -> None:
    code, out, err = run_cli(
        "explain", "-f", BOOKSTORE, "--from", "bookbuyer/bookbuyer", "--to", "bookbuyer/bookbuyer"
    )
    assert (code, out) == (2, "")
    assert (
        err == "smictl explain: --port is needed: no Service bookbuyer/bookbuyer in the files, "
        "so --to is taken as a ServiceAccount, which has no ports (SMI2002)\n"
    )
    code, _, err = run_cli(
        "explain", "-f", BOOKSTORE, "--from", "Not An Identity", "--to", "bookstore/bookstore"
    )
    assert code == 2 and err.startswith("smictl explain: --from: ")
    code, _, err = run_cli(
        "explain", "-f", BOOKSTORE, "--from", "bookbuyer/bookbuyer", "--to",
        "bookstore/bookstore", "--header", "no-equals-sign",
    )  # fmt: skip
    assert code == 2 and "write it as NAME=VALUE" in err


def test_service_without_workloads_in_the_files_is_taken_as_its_service_account(
    run_cli: RunCli, repo_root: Path, tmp_path: Path
) -> None:
    """SMI manifests plus Services but no Deployments (a typical CI set): `--to shop/api`
    names the Service, and its ServiceAccount of the same name is the destination."""
    mesh = tmp_path / "mesh"
    mesh.mkdir()
    for manifest in (repo_root / "examples" / "mesh").glob("*.yaml"):
        if "kind: Deployment" not in manifest.read_text():
            (mesh / manifest.name).write_text(manifest.read_text())
    code, out, err = run_cli(
        "explain", "-f", str(mesh), "--from", "shop/web", "--to", "shop/api",
        "--method", "GET", "--path", "/books/1",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert "shop/api: taken as a ServiceAccount\n" in out
    assert out.endswith(
        "ALLOW shop/web -> shop/api: GET /books/1 on port 9090\n"
        "  allowed by TrafficTarget shop/TrafficTarget/web-to-api, match books "
        "(HTTPRouteGroup api-routes)\n"
    )

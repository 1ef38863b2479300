"""`smictl inject` reads lists as every command reads them (`smi.loading.list_items`): the
Deployments of a `DeploymentList` and the Pods of a `PodList`, whose items leave out apiVersion
and kind, get the proxy. They were passed through untouched (`injected 0, skipped 0`, exit 0)
while `validate` read them as Deployments; and a typed list's item of another type (a Pod in a
DeploymentList), which every other command refuses (SMI1013), was injected. A list whose
`items` is a mapping is SMI2003 at `items` (it was printed back untouched, exit 0), and one
without items holds no object (SMI1012 alone), as in every command."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smi.cli import main
from webhook.injection import PROXY_CONTAINER

Capsys = pytest.CaptureFixture[str]

DEPLOYMENTS = """\
apiVersion: apps/v1
kind: DeploymentList
items:
- metadata: {name: api, namespace: shop}
  spec:
    template:
      metadata: {labels: {app: api}}
      spec:
        serviceAccountName: api
        containers:
        - {name: app, image: x, ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: PodList
items:
- metadata: {name: debug, namespace: shop}
  spec:
    serviceAccountName: web
    containers:
    - {name: app, image: x}
"""

FOREIGN = """\
apiVersion: apps/v1
kind: DeploymentList
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: p, namespace: shop}
  spec:
    serviceAccountName: web
    containers:
    - {name: app, image: x}
"""


def inject(capsys: Capsys, path: Path, ca: Path) -> tuple[int, str, list[str]]:
    code = main(["inject", "-f", str(path), "--mesh-ca-cert", str(ca)])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def names(containers: list[dict[str, object]]) -> list[object]:
    return [c["name"] for c in containers]


def test_the_items_of_typed_lists_get_the_proxy_and_keep_their_shape(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    path = tmp_path / "lists.yaml"
    path.write_text(DEPLOYMENTS, encoding="utf-8")
    code, out, err = inject(capsys, path, ca_files[0])
    assert (code, err) == (0, ["injected 2, skipped 0"])
    deployments, pods = yaml.safe_load_all(out)
    [api] = deployments["items"]
    [debug] = pods["items"]
    # The items still leave apiVersion and kind to their lists.
    assert "kind" not in api and "apiVersion" not in api
    assert "kind" not in debug and "apiVersion" not in debug
    assert names(api["spec"]["template"]["spec"]["initContainers"]) == [PROXY_CONTAINER]
    assert names(debug["spec"]["initContainers"]) == [PROXY_CONTAINER]
    assert api["spec"]["template"]["metadata"]["annotations"]["smictl.io/injected"] == "true"


def test_an_item_of_another_type_than_its_typed_lists_fails_the_run_as_validate_does(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    path = tmp_path / "foreign.yaml"
    path.write_text(FOREIGN, encoding="utf-8")
    code, out, err = inject(capsys, path, ca_files[0])
    assert (code, out) == (1, "")
    expected = (
        f"{path}:4: items[0].apiVersion: a apps/v1 DeploymentList holds Deployment objects of "
        "that version, not v1 (SMI1013)"
    )
    assert err == [expected]
    assert main(["validate", "-f", str(path)]) == 1
    assert expected in capsys.readouterr().out.splitlines()


# --- lists whose `items` is not a list ------------------------------------------------------------


def test_a_list_whose_items_is_a_mapping_fails_the_run_at_items(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    """The Deployment mis-indented under `items:` was printed back without the proxy, exit 0."""
    path = tmp_path / "list.yaml"
    path.write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "  apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: api, namespace: shop}\n",
        encoding="utf-8",
    )
    code, out, err = inject(capsys, path, ca_files[0])
    assert (code, out) == (1, "")
    assert err == [f"{path}:3: items: must be a list, not an object (SMI2003)"]


@pytest.mark.parametrize("items", ["items: []\n", "items:\n", ""], ids=["empty", "null", "none"])
def test_a_list_without_items_alone_is_no_object_as_for_every_command(
    items: str, ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("apiVersion: apps/v1\nkind: DeploymentList\n" + items, encoding="utf-8")
    code, out, err = inject(capsys, path, ca_files[0])
    assert (code, out) == (1, "")
    assert err == [
        f"{path}: no objects: empty or only comments and '---'; nothing to inject (SMI1012)"
    ]
    # Beside an object, it is no problem, and comes back as it was.
    path.write_text(
        path.read_text() + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
    )
    code, out, err = inject(capsys, path, ca_files[0])
    assert (code, err) == (0, ["injected 0, skipped 0 (no Pod or pod template in the input)"])
    assert next(yaml.safe_load_all(out)) == yaml.safe_load(
        "apiVersion: apps/v1\nkind: DeploymentList\n" + items
    )


def test_a_symlinked_directory_is_not_entered_and_said_so(
    ca_files: tuple[Path, Path], tmp_path: Path, capsys: Capsys
) -> None:
    """As `validate` says it (SMI1014, a warning): inject refused the whole run on it, or,
    before the warning, passed over its Deployments without a word."""
    (tmp_path / "apps").mkdir()
    (tmp_path / "real").mkdir()
    (tmp_path / "apps" / "lists.yaml").write_text(DEPLOYMENTS, encoding="utf-8")
    (tmp_path / "real" / "more.yaml").write_text(DEPLOYMENTS, encoding="utf-8")
    (tmp_path / "apps" / "shared").symlink_to("../real")
    code, _, err = inject(capsys, tmp_path / "apps", ca_files[0])
    assert (code, err) == (
        0,
        [
            f"{tmp_path}/apps/shared: warning: symbolic link to a directory, not entered (name "
            "it with -f to read it) (SMI1014)",
            "injected 2, skipped 0",
        ],
    )

"""What compile, validate and explain read, and how they agree on it.

Found by an audit: a Service in front of a StatefulSet "selected no workload", so explain judged
a ServiceAccount named after the Service and said ALLOW where the pods' own identity is denied;
two different copies of one Service gave a MeshPolicy that depended on the order of the files;
an IdentityBinding source granted ServiceAccounts of other namespaces; a `destination.port` no
route opens allowed nothing without a word; and one object written in two versions was called
"different content" with no field that differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from compiler_fixtures import (
    RunCli,
    binding,
    binding_ref,
    ident,
    sa,
    target,
    tcp,
    tcp_rule,
)

from smi.compiler.build import compile
from smi.compiler.checks import validate
from smi.compiler.workloads import find_service, service_app_ports, service_identities
from smi.loading import load_text
from smi.resources import ContextObject, Source

# --- every workload kind leads to its pods' identity ---------------------------------------------

POD = {
    "metadata": {"labels": {"app": "db"}},
    "spec": {
        "serviceAccountName": "postgres",
        "containers": [
            {"name": "pg", "image": "postgres", "ports": [{"name": "pg", "containerPort": 5432}]}
        ],
    },
}
WORKLOADS = {
    "Deployment": ("apps/v1", {"template": POD}),
    "StatefulSet": ("apps/v1", {"serviceName": "db", "template": POD}),
    "DaemonSet": ("apps/v1", {"template": POD}),
    "ReplicaSet": ("apps/v1", {"template": POD}),
    "ReplicationController": ("v1", {"template": POD}),
    "Job": ("batch/v1", {"template": POD}),
    "CronJob": ("batch/v1", {"schedule": "@daily", "jobTemplate": {"spec": {"template": POD}}}),
}


def context(kind: str, api_version: str, raw: dict[str, Any], *, ns: str = "data") -> ContextObject:
    """A context object as the loader keeps it."""
    name = raw["metadata"]["name"]
    return ContextObject(api_version, kind, name, ns, raw, Source(f"{kind}.yaml", 1, 0))


def db_service(port: int = 5432, *, target_port: Any = "pg") -> ContextObject:
    raw = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db", "namespace": "data"},
        "spec": {"selector": {"app": "db"}, "ports": [{"port": port, "targetPort": target_port}]},
    }
    return context("Service", "v1", raw)


def workload(kind: str, *, api_version: str | None = None) -> ContextObject:
    version, spec = WORKLOADS[kind]
    api_version = api_version or version
    raw = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "db", "namespace": "data"},
        "spec": spec,
    }
    return context(kind, api_version, raw)


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_a_service_leads_to_the_identity_of_any_workload_kind(kind: str) -> None:
    objects = [db_service(), workload(kind)]
    found = service_identities(objects, "data/db", trust_domain="cluster.local")
    assert found == (ident("data", "postgres"),)
    assert service_app_ports(objects, "data/db", 5432) == (5432,)  # named port, via the pod


def test_a_kind_of_another_group_holds_no_pod() -> None:
    """A CRD named like a workload kind is not one: its `spec.template` is no pod."""
    objects = [db_service(), workload("Deployment", api_version="example.com/v1")]
    assert service_identities(objects, "data/db", trust_domain="cluster.local") == ()


# --- one namespace for a context object, the loader's -------------------------------------------

NAMESPACELESS = """
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  template:
    metadata: {labels: {app: db}}
    spec:
      serviceAccountName: postgres
      containers: [{name: pg, image: postgres}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: pg}
spec: {matches: {ports: [5432]}}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t}
spec:
  destination: {kind: ServiceAccount, name: postgres}
  rules: [{kind: TCPRoute, name: pg}]
  sources: [{kind: ServiceAccount, name: api, namespace: shop}]
"""


def test_objects_without_a_namespace_are_read_in_the_namespace_of_dash_n(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """`-n data` put the TrafficTarget in data, but the Service in "default": explain found no
    Service data/db (exit 2) and compile listed default/db."""
    path = tmp_path / "mesh.yaml"
    path.write_text(NAMESPACELESS, encoding="utf-8")
    code, out, err = run_cli(
        "explain", "-f", str(path), "-n", "data", "--from", "shop/api", "--to", "data/db",
        "--protocol", "tcp",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out.splitlines()[:2] == [
        "data/db: selects ServiceAccount(s) data/postgres",
        "ALLOW shop/api -> data/postgres: tcp to port 5432",
    ]
    loaded = load_text(NAMESPACELESS, filename="mesh.yaml", default_namespace="data")
    policy = compile(loaded.resources, context=loaded.context).policy
    assert list(policy.services) == ["data/db"]


# --- explain names what the loader skipped --------------------------------------------------------


def test_explain_names_on_stderr_the_objects_the_loader_skipped(
    tmp_path: Path, run_cli: RunCli
) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(
        NAMESPACELESS + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n",
        encoding="utf-8",
    )
    code, _, err = run_cli(
        "explain", "-f", str(path), "-n", "data", "--from", "shop/api", "--to", "data/db",
        "--protocol", "tcp",
    )  # fmt: skip
    assert code == 0
    assert err == (
        f"{path}:32: warning: skipped v1 ConfigMap: not an SMI resource or a context object "
        "(SMI1008)\n"
    )


STATEFUL = """
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec: {selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: data}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {serviceAccountName: postgres, containers: [{name: pg, image: postgres}]}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: pg, namespace: data}
spec: {matches: {ports: [5432]}}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api-to-db-sa, namespace: data}
spec:
  destination: {kind: ServiceAccount, name: db, namespace: data}
  rules: [{kind: TCPRoute, name: pg}]
  sources: [{kind: ServiceAccount, name: api, namespace: shop}]
"""


def test_explain_judges_a_statefulset_service_by_its_pods_identity(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """The loader skipped StatefulSets (SMI1008), so explain found no workload for data/db,
    took the Service name for its ServiceAccount and said ALLOW: the pods run as postgres."""
    path = tmp_path / "mesh.yaml"
    path.write_text(STATEFUL, encoding="utf-8")
    code, out, err = run_cli(
        "explain", "-f", str(path), "--from", "shop/api", "--to", "data/db", "--protocol", "tcp"
    )
    assert (code, err) == (1, "")
    assert out.splitlines()[:2] == [
        "data/db: selects ServiceAccount(s) data/postgres",
        "DENY shop/api -> data/postgres: tcp to port 5432",
    ]


# --- two copies of one context object -----------------------------------------------------------

POLICY = """
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: api
  backends: [{service: api-v1, weight: 50}, {service: api-v2, weight: 50}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: api-v1, namespace: shop}
spec: {selector: {app: api, v: "1"}, ports: [{port: 80}]}
"""
V2_80 = """
apiVersion: v1
kind: Service
metadata: {name: api-v2, namespace: shop}
spec: {selector: {app: api, v: "2"}, ports: [{port: 80}]}
"""
V2_9090 = V2_80.replace("port: 80", "port: 9090")
# The same Service as V2_80: other key order, the namespace left to -n.
V2_80_AGAIN = """
kind: Service
apiVersion: v1
metadata: {name: api-v2}
spec: {ports: [{port: 80}], selector: {v: "2", app: api}}
"""


def load(*files: tuple[str, str]) -> tuple[list[Any], list[ContextObject]]:
    resources: list[Any] = []
    objects: list[ContextObject] = []
    for name, text in files:
        loaded = load_text(text, filename=name, default_namespace="shop")
        assert loaded.ok, loaded.diagnostics
        resources += loaded.resources
        objects += loaded.context
    return resources, objects


def test_two_different_copies_of_a_service_compile_alike_in_any_order() -> None:
    """DESIGN.md §4: the last copy won, so `-f a -f b` and `-f b -f a` hashed differently."""
    one = load(("policy.yaml", POLICY), ("a.yaml", V2_80), ("b.yaml", V2_9090))
    other = load(("policy.yaml", POLICY), ("b.yaml", V2_9090), ("a.yaml", V2_80))
    first = compile(one[0], context=one[1])
    second = compile(other[0], context=other[1])
    assert first.policy.to_dict() == second.policy.to_dict()
    assert first.skipped == second.skipped
    conflict = [d for d in first.skipped if d.code == "SMI6005"]
    assert [(d.object_ref, d.file, d.message) for d in conflict] == [
        (
            "shop/Service/api-v2",
            "a.yaml",
            "2 different objects named shop/Service/api-v2; one is used",
        )
    ]


def test_explain_reads_the_copy_compile_reads() -> None:
    _, objects = load(("a.yaml", V2_80), ("b.yaml", V2_9090))
    chosen = find_service(objects, "shop/api-v2")
    assert chosen is not None and find_service(objects[::-1], "shop/api-v2") == chosen
    policy = compile([], context=objects).policy
    assert policy.services["shop/api-v2"].ports == (80,) == (chosen["spec"]["ports"][0]["port"],)


def test_two_different_copies_of_a_service_are_an_error_at_the_later_one() -> None:
    resources, objects = load(("policy.yaml", POLICY), ("a.yaml", V2_80), ("b.yaml", V2_9090))
    found = [(d.format(), d.is_error) for d in validate(resources, objects) if d.code == "SMI3008"]
    assert found == [
        (
            "b.yaml:2: Service/shop/api-v2 is defined twice with different content (first at "
            "a.yaml:2, again at b.yaml:2): which one takes effect would depend on the order "
            "they are applied in, and smictl apply refuses the set; keep one (SMI3008)",
            True,
        )
    ]


def test_identical_copies_of_a_service_are_one_object() -> None:
    resources, objects = load(("policy.yaml", POLICY), ("a.yaml", V2_80), ("b.yaml", V2_80_AGAIN))
    found = [(d.format(), d.is_error) for d in validate(resources, objects) if d.code == "SMI3008"]
    assert found == [
        (
            "b.yaml:2: warning: Service/shop/api-v2 is defined twice, identically (first at "
            "a.yaml:2); the copies are applied as one object (SMI3008)",
            False,
        )
    ]


def test_compile_and_explain_refuse_two_different_copies(tmp_path: Path, run_cli: RunCli) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY + "---" + V2_80, encoding="utf-8")
    (tmp_path / "override.yaml").write_text(V2_9090, encoding="utf-8")
    files = ("-f", str(tmp_path / "policy.yaml"), "-f", str(tmp_path / "override.yaml"))
    for argv in (
        ("compile", *files),
        ("explain", *files, "--from", "shop/web", "--to", "shop/api"),
    ):
        code, out, err = run_cli(*argv)
        assert (code, out) == (1, ""), argv
        assert f"{tmp_path / 'override.yaml'}:2: Service/shop/api-v2 is defined twice" in err
        assert err.endswith("smictl: 1 error(s) in the manifests; nothing compiled\n")


# --- IdentityBinding sources -------------------------------------------------------------------


def test_a_binding_source_grants_no_service_account_of_another_namespace() -> None:
    """SPEC.md §2.5: a binding describes only workloads of its own namespace."""
    team = binding(
        "workers",
        ns="team-x",
        service_account="worker",
        spiffe=[
            "cluster.local/ns/kube-system/sa/admin",
            "spiffe://cluster.local/ns/team-x/sa/batch",
            "partner.example/ns/shop/sa/checkout",  # another trust domain: federation
        ],
    )
    tt = target(
        "t", ns="shop", dest=sa("d"), sources=[binding_ref("workers", "team-x")],
        rules=[tcp_rule("tcp")],
    )  # fmt: skip
    result = compile([team, tcp("tcp", ns="shop"), tt])
    (rule,) = result.policy.destinations[ident("shop", "d")]
    assert rule.sources == (
        ident("team-x", "batch"),
        ident("team-x", "worker"),
        "spiffe://partner.example/ns/shop/sa/checkout",
    )
    assert [(d.code, d.object_ref, d.path, d.message) for d in result.skipped] == [
        (
            "SMI6006",
            "team-x/IdentityBinding/workers",
            "spec.schemes.spiffeIdentities[0]",
            "identity spiffe://cluster.local/ns/kube-system/sa/admin is a ServiceAccount of "
            "namespace 'kube-system', and a binding describes only workloads of its own "
            "('team-x'): skipped as a source of every TrafficTarget that names this binding",
        )
    ]


BINDING_TWICE = """
apiVersion: access.smi-spec.io/v1alpha4
kind: IdentityBinding
metadata: {name: workers, namespace: team-x}
spec:
  schemes:
    spiffeIdentities: [cluster.local/ns/team-x/sa/batch, cluster.local/ns/kube-system/sa/admin]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: db, namespace: shop}
spec: {}
""" + "".join(
    f"""---
apiVersion: access.smi-spec.io/v1alpha4
kind: TrafficTarget
metadata: {{name: {name}, namespace: shop}}
spec:
  destination: {{kind: ServiceAccount, name: db, namespace: shop}}
  rules: [{{kind: TCPRoute, name: db}}]
  sources: [{{kind: IdentityBinding, name: workers, namespace: team-x}}]
"""
    for name in ("t1", "t2")
)


def test_a_foreign_binding_identity_is_reported_once_at_the_binding() -> None:
    """Two TrafficTargets naming one binding with a foreign entry: one SMI6006, at the entry
    (it was said at each TrafficTarget's source, naming their lines, not the binding's)."""
    loaded = load_text(BINDING_TWICE, filename="ib.yaml")
    assert loaded.ok, loaded.diagnostics
    result = compile(loaded.resources, context=loaded.context)
    assert [d.format() for d in result.skipped] == [
        "ib.yaml:7: warning: spec.schemes.spiffeIdentities[1]: identity "
        "spiffe://cluster.local/ns/kube-system/sa/admin is a ServiceAccount of namespace "
        "'kube-system', and a binding describes only workloads of its own ('team-x'): skipped "
        "as a source of every TrafficTarget that names this binding (SMI6006)"
    ]
    assert [r.sources for r in result.policy.destinations[ident("shop", "db")]] == [
        (ident("team-x", "batch"),),
        (ident("team-x", "batch"),),
    ]


def test_a_binding_of_only_foreign_identities_leaves_the_target_with_no_source() -> None:
    team = binding("workers", ns="team-x", spiffe=["cluster.local/ns/kube-system/sa/admin"])
    tt = target(
        "t", ns="shop", dest=sa("d"), sources=[binding_ref("workers", "team-x")],
        rules=[tcp_rule("tcp")],
    )  # fmt: skip
    result = compile([team, tcp("tcp", ns="shop"), tt])
    assert result.policy.destinations == {}
    assert [d.code for d in result.skipped] == ["SMI6004", "SMI6006"]


# --- a destination.port no rule opens ----------------------------------------------------------

PORT_TARGET = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: db, namespace: n}
spec: {matches: {ports: [5432]}}
---
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: t, namespace: n}
spec:
  destination: {kind: ServiceAccount, name: db, namespace: n, port: PORT}
  rules: [{kind: TCPRoute, name: db}]
  sources: [{kind: ServiceAccount, name: api, namespace: n}]
"""


def test_a_destination_port_no_route_opens_allows_nothing_and_is_said() -> None:
    loaded = load_text(PORT_TARGET.replace("PORT", "8080"), filename="px.yaml")
    result = compile(loaded.resources)
    assert result.policy.destinations == {}
    assert [d.format() for d in result.skipped] == [
        "px.yaml:11: warning: spec.destination.port: destination.port 8080 is none of the ports "
        "its rules open (TCPRoute 5432): it allows nothing and is left out (SMI6004)"
    ]
    assert [d.format() for d in validate(loaded.resources)] == [
        "px.yaml:11: warning: spec.destination.port: destination.port 8080 is none of the ports "
        "its rules open (TCPRoute db: 5432): this TrafficTarget allows nothing, and compile "
        "leaves it out (SMI6004)"
    ]


@pytest.mark.parametrize(
    "variant",
    [
        ("PORT", "5432"),  # the route's own port
        ("ports: [5432]", "ports: []"),  # a route of every port
    ],
)
def test_a_destination_port_a_route_opens_is_not_reported(variant: tuple[str, str]) -> None:
    text = PORT_TARGET.replace(*variant).replace("PORT", "5432")
    loaded = load_text(text, filename="p.yaml")
    result = compile(loaded.resources)
    assert list(result.policy.destinations) == [ident("n", "db")]
    assert (result.skipped, validate(loaded.resources)) == ((), [])


# --- one object in two versions ----------------------------------------------------------------

TWO_VERSIONS = """
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: n}
spec:
  destination: {kind: ServiceAccount, name: d, namespace: n}
  rules: [{kind: TCPRoute, name: tcp}]
  sources: [{kind: ServiceAccount, name: s1, namespace: n}]
---
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: t, namespace: n}
spec:
  destination: {kind: ServiceAccount, name: d, namespace: n}
  rules: [{kind: TCPRoute, name: tcp}]
  sources: [{kind: ServiceAccount, name: s1, namespace: n}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: tcp, namespace: n}
spec: {matches: {ports: []}}
"""


def test_one_object_in_two_versions_is_said_to_be_in_two_versions() -> None:
    """The store keeps an object as written, so `smictl apply` refuses the two (SMI2007):
    still an error, but "different content" sent the reader looking for a field."""
    loaded = load_text(TWO_VERSIONS, filename="dup.yaml")
    assert [(d.format(), d.is_error) for d in validate(loaded.resources)] == [
        (
            "dup.yaml:12: metadata.name: TrafficTarget/n/t is defined twice, in different "
            "versions (access.smi-spec.io/v1alpha3 at dup.yaml:2, access.smi-spec.io/v1alpha2 "
            "at dup.yaml:10), alike otherwise: an object is stored in the version it is "
            "written in, so smictl apply refuses the set; keep one (SMI3008)",
            True,
        )
    ]

"""Outside-checker probes: adversarial but plausible manifests through `smictl validate`,
`convert` and `compile`, with the expected answers derived from SPEC.md and DESIGN.md."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from smi import cli
from smi.apis.lossy import fingerprint
from smi.apis.meta import LOSSY_ANNOTATION


def _write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _annotated(doc: dict, lost: dict) -> str:
    doc["metadata"]["annotations"] = {LOSSY_ANNOTATION: json.dumps(lost)}
    return yaml.safe_dump(doc, sort_keys=False)


# --- a lossy-fields annotation the version could never have written -------------------------


def _tt_v1alpha3_with_binding_destination_in_annotation() -> str:
    wire = {"group": "", "kind": "ServiceAccount", "name": "api", "namespace": "", "port": None}
    stored = {**wire, "kind": "IdentityBinding", "group": "access.smi-spec.io"}
    doc = {
        "apiVersion": "access.smi-spec.io/v1alpha3",
        "kind": "TrafficTarget",
        "metadata": {"name": "tt", "namespace": "ns1"},
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": "api"},
            "rules": [{"kind": "TCPRoute", "name": "t"}],
            "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "ns1"}],
        },
    }
    return _annotated(doc, {"destination": {"value": stored, "was": fingerprint(wire)}})


def _split_v1alpha1_with_out_of_range_weights_in_annotation() -> str:
    wire = [{"service": "a", "weight_milli": 1000}, {"service": "b", "weight_milli": 2000}]
    stored = [{"service": "a", "weight_milli": 2**64}, {"service": "b", "weight_milli": 2**65}]
    doc = {
        "apiVersion": "split.smi-spec.io/v1alpha1",
        "kind": "TrafficSplit",
        "metadata": {"name": "s", "namespace": "ns1"},
        "spec": {
            "service": "web",
            "backends": [{"service": "a", "weight": "1"}, {"service": "b", "weight": "2"}],
        },
    }
    return _annotated(doc, {"backends": {"value": stored, "was": fingerprint(wire)}})


@pytest.mark.parametrize(
    ("make", "to"),
    [
        (_tt_v1alpha3_with_binding_destination_in_annotation, "access.smi-spec.io/v1alpha2"),
        (_split_v1alpha1_with_out_of_range_weights_in_annotation, "split.smi-spec.io/v1alpha4"),
    ],
)
def test_convert_reports_an_unwritable_annotation_as_smi4004_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, to: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(make(), encoding="utf-8")  # type: ignore[operator]
    code, out, err = _run(capsys, "convert", "-f", str(path), "--to", to)
    assert code == 1
    assert out == ""
    assert "internal error" not in err and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert re.match(rf"{re.escape(str(path))}:\d+: metadata\.annotations\[", line), line
    assert line.endswith("(SMI4004)")


def test_validate_locates_an_unwritable_annotation_on_the_annotation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(_split_v1alpha1_with_out_of_range_weights_in_annotation(), encoding="utf-8")
    code, out, _ = _run(capsys, "validate", "-f", str(path))
    assert code == 1
    (line,) = out.strip().splitlines()
    # not "m.yaml:1: weight: ..." (a path that is nowhere in the file)
    assert re.match(rf"{re.escape(str(path))}:\d+: metadata\.annotations\[", line), line
    assert line.endswith("(SMI4004)")


# --- v1alpha1 quantities whose ratio needs integers beyond the integer versions' range -------


def test_a_valid_v1alpha1_split_with_extreme_ratios_converts_and_round_trips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(
        tmp_path,
        """
        apiVersion: split.smi-spec.io/v1alpha1
        kind: TrafficSplit
        metadata: {name: s, namespace: ns1}
        spec:
          service: web
          backends:
          - {service: a, weight: "1P"}
          - {service: b, weight: "1m"}
          - {service: c, weight: "0"}
        """,
    )
    assert _run(capsys, "validate", "-f", str(src))[0] == 0
    code, out, err = _run(capsys, "convert", "-f", str(src), "--to", "split.smi-spec.io/v1alpha4")
    assert (code, err) == (0, "")
    doc = yaml.safe_load(out)
    weights = [b["weight"] for b in doc["spec"]["backends"]]
    assert weights[0] > 10**15 and weights[1] >= 1 and weights[2] == 0  # b keeps a share
    assert LOSSY_ANNOTATION in doc["metadata"]["annotations"]
    v4 = _write(tmp_path, out, "v4.yaml")
    assert _run(capsys, "validate", "-f", str(v4))[0] == 0
    code, back, _ = _run(capsys, "convert", "-f", str(v4), "--to", "split.smi-spec.io/v1alpha1")
    assert code == 0
    _, direct, _ = _run(capsys, "convert", "-f", str(src), "--to", "split.smi-spec.io/v1alpha1")
    assert back == direct


def test_a_v1alpha1_split_with_milli_weights_converted_to_v1alpha4_validates_and_compiles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DESIGN.md §3: v1alpha1 "500m" = 500 milli-units; conversion is lossless, so the
    converted object is as valid as the original and compiles to the same weights."""
    src = _write(
        tmp_path,
        """
        apiVersion: split.smi-spec.io/v1alpha1
        kind: TrafficSplit
        metadata: {name: s, namespace: ns1}
        spec:
          service: web
          backends:
          - {service: web-v1, weight: "500m"}
          - {service: web-v2, weight: 1}
          - {service: web-v3, weight: "1.5"}
        """,
    )
    code, out, _ = _run(capsys, "convert", "-f", str(src), "--to", "split.smi-spec.io/v1alpha4")
    assert code == 0
    assert [b["weight"] for b in yaml.safe_load(out)["spec"]["backends"]] == [1, 2, 3]
    v4 = _write(tmp_path, out, "v4.yaml")
    code, report, _ = _run(capsys, "validate", "-f", str(v4))
    assert (code, report) == (0, "")
    code, policy, _ = _run(capsys, "compile", "-f", str(v4))
    assert code == 0
    backends = json.loads(policy)["splits"]["ns1/web"]["backends"]
    assert [(b["service"], b["weight"]) for b in backends] == [
        ("ns1/web-v1", 500),
        ("ns1/web-v2", 1000),
        ("ns1/web-v3", 1500),
    ]


# --- compile diagnostics point into flat-layout files -----------------------------------------


def test_compile_warnings_name_the_flat_v1alpha1_path_and_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(
        tmp_path,
        """
        apiVersion: access.smi-spec.io/v1alpha1
        kind: TrafficTarget
        metadata:
          name: tt
          namespace: ns1
        destination:
          kind: ServiceAccount
          name: api
        specs:
        - kind: TCPRoute
          name: t
        - kind: HTTPRouteGroup
          name: missing
        sources:
        - kind: ServiceAccount
          name: web
          namespace: ns1
        ---
        apiVersion: specs.smi-spec.io/v1alpha1
        kind: TCPRoute
        metadata:
          name: t
          namespace: ns1
        """,
    )
    code, _, err = _run(capsys, "compile", "-f", str(src))
    assert code == 0
    assert err.strip().splitlines() == [
        f"{src}:12: warning: specs[1]: HTTPRouteGroup ns1/missing not found: rule skipped (SMI6001)"
    ]


_SPLIT = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {{name: s1, namespace: shop}}
spec:
  service: web
  backends: [{{service: web-v1, weight: {w1}}}, {{service: web-v2, weight: {w2}}}]
"""


@pytest.mark.parametrize("command", ["validate", "admit -q", "compile"])
def test_an_object_defined_twice_differently_fails_every_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # validate warned (exit 0), `admit -q` printed ok and compile picked one copy by content,
    # while `smictl apply -f` of the same directory refused it: CI passed what deploy refused.
    d = tmp_path / "d"
    d.mkdir()
    _write(d, _SPLIT.format(w1=90, w2=10), "a.yaml")
    _write(d, "# the canary, half and half\n" + _SPLIT.format(w1=50, w2=50), "b.yaml")
    code, out, err = _run(capsys, *command.split(), "-f", str(d))
    assert code == 1
    [line] = [x for x in (out + err).splitlines() if "SMI3008" in x]
    assert line == (
        f"{d}/b.yaml:4: metadata.name: TrafficSplit/shop/s1 is defined twice with different "
        f"content (first at {d}/a.yaml:1, again at {d}/b.yaml:2): which one takes effect would "
        "depend on the order they are applied in, and smictl apply refuses the set; keep one "
        "(SMI3008)"
    )


@pytest.mark.parametrize("command", ["validate", "admit", "compile"])
def test_an_object_defined_twice_identically_is_one_object_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # Key order and comments aside, the copies are the same object: applied as one.
    _write(tmp_path, _SPLIT.format(w1=90, w2=10), "a.yaml")
    other = "# copied from a.yaml\n" + _SPLIT.format(w1=90, w2=10).replace(
        "{name: s1, namespace: shop}", "{namespace: shop, name: s1}"
    )
    _write(tmp_path, other, "b.yaml")
    code, out, err = _run(capsys, command, "-f", str(tmp_path))
    assert code == 0, out + err
    if command != "compile":  # compile prints only what it could not compile
        [line] = [x for x in (out + err).splitlines() if "SMI3008" in x]
        assert line == (
            f"{tmp_path}/b.yaml:4: warning: metadata.name: TrafficSplit/shop/s1 is defined "
            f"twice, identically (first at {tmp_path}/a.yaml:1); the copies are applied as one "
            "object (SMI3008)"
        )

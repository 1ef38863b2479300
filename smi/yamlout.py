"""YAML that Kubernetes tools read back as it was written: `Dumper` for every manifest smictl
prints (`inject`, `convert`, `compile -o yaml`, `get -o yaml`).

PyYAML decides whether a string needs quotes by YAML 1.1's resolvers as PyYAML implements them,
and the Go parsers behind kubectl read more plain scalars as numbers or booleans: `1e3`, `0o17`
and `1234e56` (a short git SHA) are numbers to go-yaml v3 (YAML 1.2), `y` and `N` booleans to
go-yaml v2 (YAML 1.1). Printed plain, a label or an env value changed meaning on the way back
in, or was refused as not a string. A string that any of them could read as something else is
written double-quoted; every other string as PyYAML writes it (text of several lines as a
literal block, readable in a diff).
"""

from __future__ import annotations

import re

import yaml

try:
    from yaml import CSafeDumper as _BaseDumper
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]

# Plain scalars some YAML 1.1 or 1.2 reader takes for a bool, null or number: the YAML 1.1
# booleans (y/n included), null spellings, and anything that starts like a number (a sign, a
# digit or a dot then a digit), `.inf` and `.nan` — quoting a string that only looks numeric is
# harmless, missing one is not.
_NOT_A_PLAIN_STRING = re.compile(
    r"""(?x)
    (?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)
    | (?:~|null|Null|NULL)
    | [-+]?\.?[0-9].*
    | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)
    | =|<<
    """,
    re.DOTALL,
)


def needs_quotes(text: str) -> bool:
    """Whether `text` printed plain could be read back as something other than a string."""
    return _NOT_A_PLAIN_STRING.fullmatch(text) is not None


class Dumper(_BaseDumper):
    """Block YAML with strings quoted wherever a Kubernetes tool could read them otherwise."""


def _represent_str(dumper: Dumper, text: str) -> yaml.ScalarNode:
    if "\n" in text:
        style: str | None = "|"
    elif needs_quotes(text):
        style = '"'
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


Dumper.add_representer(str, _represent_str)

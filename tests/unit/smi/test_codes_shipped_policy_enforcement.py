"""`smictl explain-code` tells the truth about each shipped policy's enforcement: a user who
reads "refuses" for a policy that only warns (SMI5103 did, once path-regex-anchored became a
warning) goes looking for a denial that never comes."""

from __future__ import annotations

import pytest

from smi import codes
from smi.policy.modules import PolicyInfo
from smi.policy.policyset import PolicySet

SHIPPED = PolicySet.load().policies


@pytest.mark.parametrize("policy", SHIPPED, ids=[p.name for p in SHIPPED])
def test_the_explanation_of_a_shipped_policy_code_says_whether_it_warns(
    policy: PolicyInfo,
) -> None:
    explanation = codes.CODES[policy.code].explanation
    assert explanation.startswith("Shipped policy ") and f"/{policy.name}" in explanation
    assert ("(a warning" in explanation) == (policy.enforcement == "warn"), explanation

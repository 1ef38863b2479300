"""unsafe_vars on generated valid rules, with regopy as the judge: a rule that holds reads no
unbound variable, so nothing in it may be flagged; the same rule with a read misspelt must be
flagged, and regopy must find it undefined. (A reduced form of the generator that found eight
misread shapes while the check was written.)"""

from __future__ import annotations

import json
import random

import pytest
import regopy

from smi.policy.modules import RegoModule
from smi.policy.unsafe_vars import check

DOC = {"n": 3, "nums": [1, 2], "pair": [1, 2], "o": {"k": 1}}

# How a variable gets bound, and whether it then holds a number or the object `{"k": 1}`.
BINDINGS = [
    ("{v} := input.n", "number"),
    ("input.n = {v}", "number"),
    ("some {v} in input.nums", "number"),
    ("[{v}, _] := input.pair", "number"),
    ('{{"k": {v}}} = input.o', "number"),
    ("{v} := [t | some t in input.nums][0]", "number"),
    ("count(input.nums, {v})", "number"),
    ("plus(\n\t\tinput.n,\n\t\t1,\n\t\t{v},\n\t)", "number"),
    ("some i_{v}; {v} := input.nums[i_{v}]", "number"),
    ("{v} := input.o", "object"),
    ("input.o = {v}", "object"),
]
# How it is read, by what it holds: each holds for DOC. The first of each list reads it in a
# shape the check judges (an operand, a reference's head); the others where it could also be
# bound (a call's only argument, a collection), which the check leaves alone.
READS = {
    "number": [
        "{v} > 0",
        "{v} + 1 > {v}",
        "{v} == {v}",
        "{v} != -1",
        "{v} * 2 >= {v}",
        "{v}\n\t\t> 0",
        "abs({v}) >= 0",
        "max([{v}, 0]) >= 0",
    ],
    "object": ["{v}.k > 0", '{v}["k"] == 1', "{v}.k +\n\t\t1 > 1", "count({v}) == 1"],
}
JUDGED = {"number": 6, "object": 3}  # (how many of each list, from its start)
SEPARATORS = ["\n\t", "; ", "\n  # {v}.w > 1 (a comment)\n\t"]


def _rule(rng: random.Random, names: int) -> tuple[str, list[tuple[str, str]]]:
    """A rule `a` that holds for DOC, and its reads in a judged shape (var, read text)."""
    binds: list[str] = []
    statements: list[str] = []  # (the reads; the bindings go first, or each before its reads)
    reads: list[tuple[str, str]] = []
    first = rng.random() < 0.5
    for n in range(names):
        var = f"var_{n}"
        bind, holds = rng.choice(BINDINGS)
        (binds if first else statements).append(bind.format(v=var))
        for _ in range(rng.randint(1, 2)):
            shape = rng.randrange(len(READS[holds]))
            read = READS[holds][shape].format(v=var)
            statements.append(read)
            if shape < JUDGED[holds]:
                reads.append((var, read))
    rng.shuffle(reads)
    statements = binds + statements
    body = ""
    for i, statement in enumerate(statements):
        body += (rng.choice(SEPARATORS).format(v="q") if i else "\n\t") + statement
    head = rng.choice(["a if {", "a := true if {", "a if\n{", "a := true\nif {"])
    return f"{head}{body}\n}}\n", reads


def _source(rule: str) -> str:
    return "package p\n\nimport rego.v1\n\n" + rule


def _regopy(source: str) -> str:
    interpreter = regopy.Interpreter()
    interpreter.add_module("p", source)
    interpreter.set_input_term(json.dumps(DOC))
    return str(interpreter.query("data.p.a"))


@pytest.mark.parametrize("seed", range(4))
def test_generated_valid_rules_are_not_flagged(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(40):
        rule, _reads = _rule(rng, rng.randint(1, 4))
        source = _source(rule)
        assert _regopy(source) == '{"expressions":[true]}', source
        assert check([RegoModule("p.rego", source, "p", False)]) == [], source


@pytest.mark.parametrize("seed", range(4))
def test_a_misspelt_read_is_flagged_and_undefined(seed: int) -> None:
    rng = random.Random(1000 + seed)
    tried = 0
    while tried < 40:
        rule, reads = _rule(rng, rng.randint(1, 3))
        if not reads:
            continue
        tried += 1
        var, read = reads[0]
        misspelt = read.replace(var, var + "x")
        source = _source(rule.replace(read, misspelt, 1))
        assert _regopy(source) == "undefined", source
        flagged = [
            d.message.split("`")[3] for d in check([RegoModule("p.rego", source, "p", False)])
        ]
        assert flagged == [var + "x"], source

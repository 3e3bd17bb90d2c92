"""Validation of the governance record kinds (node.model, governance section)."""

from __future__ import annotations

import pytest

from node import model
from node.errors import ValidationError

S = "eu/nl/drenthe/assen"
PROPOSAL = {
    "title": "t",
    "method": "approval",
    "electorate": "eu/nl",
    "opens": 1,
    "closes": 2,
    "options": [{"id": "a", "name": "A"}],
    "seats": 1,
}
BUDGET = {
    "title": "t",
    "method": "mes",
    "electorate": "eu",
    "opens": 1,
    "closes": 2,
    "projects": [{"id": "p1", "name": "P", "cost": 10}],
    "budget": 10,
}
ASSEMBLY = {
    "title": "t",
    "scope": "eu",
    "size": 2,
    "committers": ["a" * 64, "b" * 64, "c" * 64],
    "quotas": {"age": {"young": [0, 1]}},
}
GOOD = [
    ("member", {"pseudonym": "x", "consent": True, "features": {"age": "30-44"}}),
    ("proposal", PROPOSAL),
    ("proposal", BUDGET),
    ("proposal", {**BUDGET, "import": "ab" * 32}),
    ("proposal", {**PROPOSAL, "method": "score", "min_score": 0, "max_score": 5}),
    ("vote", {"ballot": ["a", "b"]}),
    ("vote", {"ballot": {"a": 3}}),
    ("vote", {"ballot": [["a"], ["b", "c"]]}),
    ("vote", {"ballot": []}),
    ("close", {"chunks": 1, "count": 3, "hash": "0" * 64}),
    ("closeset", {"votes": [b"x"]}),
    ("volunteer", {"consent": True}),
    ("assembly", ASSEMBLY),
    ("assembly", {**ASSEMBLY, "beacon": "ab" * 32}),
    ("pool", {"chunks": 0, "count": 0, "hash": "0" * 64}),
    ("poolset", {"members": [[b"k" * 32, {"age": "young"}]]}),
    ("commit", {"hash": "1" * 64, "pool": "2" * 64}),
    ("seal", {"assembly": "1" * 64, "pool": "2" * 64, "commits": {"a" * 64: "3" * 64}}),
    ("reveal", {"secret": "3" * 64, "seal": "4" * 64}),
    ("panel", {"members": ["4" * 64], "seed": "5" * 64}),
]
BAD = [
    ("proposal", {**BUDGET, "import": "AB" * 32}, "import"),
    ("proposal", {**BUDGET, "import": "ab" * 31}, "import"),
    ("proposal", {**BUDGET, "import": "ab" * 32 + "\n"}, "import"),
    ("proposal", {**BUDGET, "import": 5}, "import"),
    ("proposal", {**BUDGET, "import": None}, "import"),
    ("member", {"pseudonym": "x"}, "consent"),
    ("member", {"pseudonym": "x", "consent": True, "features": {"Age": "x"}}, "feature"),
    ("proposal", {**PROPOSAL, "method": "borda"}, "method"),
    ("proposal", {**PROPOSAL, "closes": 1}, "later"),
    ("proposal", {**PROPOSAL, "seats": 2}, "seats"),
    ("proposal", {**PROPOSAL, "options": [{"id": "a", "name": "A"}] * 2}, "unique"),
    ("proposal", {**BUDGET, "seats": 1}, "projects and a budget"),
    ("proposal", {**BUDGET, "projects": [{"id": "p", "name": "P", "cost": -1}]}, "cost"),
    ("proposal", {**PROPOSAL, "method": "score", "min_score": 5, "max_score": 5}, "lower"),
    ("vote", {"ballot": ["a", "a"]}, "twice"),
    ("vote", {"ballot": {"a": "3"}}, "integers"),
    ("vote", {"ballot": "a"}, "ballot must"),
    ("close", {"chunks": 1, "count": 3, "hash": "zz"}, "hex"),
    ("assembly", {**ASSEMBLY, "committers": ["a" * 64] * 3}, "distinct"),
    ("assembly", {**ASSEMBLY, "quotas": {"age": {"young": [2, 1]}}}, "min"),
    ("poolset", {"members": [[b"short", {}]]}, "32-byte"),
    ("reveal", {"secret": "x", "seal": "4" * 64}, "hex"),
    ("reveal", {"secret": "3" * 64}, "seal"),
    ("reveal", {"secret": "3" * 64, "seal": "4" * 63}, "seal"),
    ("seal", {"assembly": "1" * 64, "pool": "2" * 64, "commits": {}}, "commits"),
    (
        "seal",
        {"assembly": "1" * 64, "pool": "2" * 64, "commits": {"A" * 64: "3" * 64}},
        "committer",
    ),
    ("seal", {"assembly": "1" * 64, "pool": "2" * 64, "commits": {"a" * 64: 3}}, "commit hash"),
    (
        "seal",
        {
            "assembly": "1" * 64,
            "pool": "2" * 64,
            "commits": {f"{i:064x}": "3" * 64 for i in range(33)},
        },
        "commits",
    ),
    ("seal", {"assembly": "1" * 64, "pool": "2" * 64, "commits": [], "x": 1}, "x"),
    ("seal", {"pool": "2" * 64, "commits": {"a" * 64: "3" * 64}}, "assembly"),
]


@pytest.mark.parametrize(("kind", "body"), GOOD, ids=[k for k, _ in GOOD])
def test_valid(kind, body):
    model.validate(kind, "k", S, body)
    model.validate(kind, "k", S, None)  # a tombstone


@pytest.mark.parametrize(("kind", "body", "match"), BAD, ids=[k for k, _, _ in BAD])
def test_invalid(kind, body, match):
    with pytest.raises(ValidationError, match=match):
        model.validate(kind, "k", S, body)

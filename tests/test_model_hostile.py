"""Body validation is total and exact: whatever a peer puts in a record, every kind's
validator answers with `ValidationError` (never TypeError, KeyError, RecursionError...),
and ids, keys, scopes, periods and quantities take one spelling only: no trailing
newline, ASCII digits, no control or bidi characters."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import model
from node.errors import ValidationError

HEX = "ab" * 32
KEYS = [("cd" * 32), ("ef" * 32), ("01" * 32)]
NEED = {"item": "potatoes", "qty": "12.5", "unit": "kg", "period": "2027-Q1", "priority": "high"}

# One valid body per kind: the starting point of the one-field mutations below.
VALID: dict[str, dict] = {
    "node": {"name": "Kommune", "kind": "commune", "scope": "eu/de"},
    "item": {"id": "oats", "name": "Oats", "dimension": "mass", "unit": "kg"},
    "need": {**NEED, "note": "for the winter"},
    "capacity": {k: v for k, v in NEED.items() if k != "priority"},
    "member": {"pseudonym": "ana", "features": {"age": "30-44"}, "consent": True},
    "proposal": {
        "title": "Bike shed",
        "text": "Where?",
        "method": "score",
        "options": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}],
        "electorate": "eu/de",
        "opens": 1,
        "closes": 2,
        "min_score": 0,
        "max_score": 5,
        "seats": 1,
    },
    "vote": {"ballot": {"a": 3, "b": 1}},
    "close": {"chunks": 1, "count": 3, "hash": HEX},
    "closeset": {"votes": [b"\x99" * 120]},
    "volunteer": {"consent": True},
    "assembly": {
        "title": "Panel",
        "scope": "eu/de",
        "size": 2,
        "quotas": {"age": {"young": [0, 1], "old": [0, 2]}},
        "committers": KEYS,
        "beacon": "abcd",
    },
    "pool": {"chunks": 0, "count": 0, "hash": HEX},
    "poolset": {"members": [[b"\x01" * 32, {"age": "young"}]]},
    "commit": {"hash": HEX, "pool": HEX},
    "seal": {"assembly": HEX, "pool": HEX, "commits": {KEYS[0]: HEX}},
    "reveal": {"secret": HEX, "seal": HEX},
    "panel": {"members": [HEX], "seed": HEX},
    "comment": {"proposal": "0123456789abcdef.park", "text": "hi", "reply": f"{HEX}.c1"},
    "statement": {"proposal": "0123456789abcdef.park", "text": "short"},
    "reaction": {"proposal": "0123456789abcdef.park", "statement": f"{HEX}.s1", "react": "pass"},
    "amendment": {
        "proposal": "0123456789abcdef.park",
        "version": 1,
        "text": "t",
        "options": [{"id": "c", "name": "C"}],
        "reason": "r",
    },
    "decision": {"amendment": f"{HEX}.a1", "accept": False, "reason": "no"},
    "hide": {"comment": f"{HEX}.c1", "reason": "insult"},
    "charter": {"name": "F", "founders": KEYS[:1], "rule": {"cap": 3, "num": 1, "den": 2}},
    "endorse": {"note": "we know them"},
    "invite": {"hash": HEX},
    "apply": {"invite": f"{HEX}.abcdefgh", "secret": HEX},
    "rollup": {
        "region": "eu/de/berlin",
        "period": "2027-Q1",
        "items": [["potatoes", "mass", "3000000000000", "0", 1]],
        "nodes": 1,
        "records": 1,
        "counted": HEX,
        "admitted": [HEX],
    },
    "offer": {
        "role": "provide",
        "with": HEX,
        "item": "potatoes",
        "qty": "50",
        "unit": "kg",
        "period": "2027-Q1",
        "due": "2027-03-31",
        "note": "pick up at the depot",
    },
    "accept": {"by": HEX, "offer": "k1", "note": "see you Tuesday"},
    "decline": {"by": HEX, "offer": "k1", "reason": "too far"},
    "deliver": {"offer": f"{HEX}.k1", "qty": "20", "unit": "kg", "date": "2027-02-01"},
    "confirm": {"by": HEX, "delivery": "k1", "qty": "20", "unit": "kg", "date": "2027-02-01"},
    "dispute": {"by": HEX, "delivery": "k1", "reason": "never came"},
}


def key_for(kind, body):
    """A key the kind's key rule takes for this body."""
    if kind == "item":
        return body["id"] if isinstance(body, dict) and isinstance(body.get("id"), str) else "oats"
    if kind == "charter":
        return model.federation_id(VALID["charter"])
    if kind == "rollup":
        return "0123456789abcdef.2027-Q1"
    if kind in ("accept", "decline", "confirm", "dispute"):
        return f"{HEX[:16]}.k1"
    if kind in ("offer", "deliver"):  # the digest of its scope (as validated) and body
        try:
            return model.content_key("k1", "eu/de/berlin", body)
        except Exception:  # not a map of plain values: refused before the key matters
            return "k1-" + "0" * 32
    return {"endorse": HEX, "invite": "abcdefgh", "apply": "self"}.get(kind, "k1")


BUDGET = {
    "title": "Budget",
    "method": "mes",
    "projects": [{"id": "p1", "name": "P1", "cost": 10}],
    "budget": 100,
    "electorate": "eu/de",
    "opens": 1,
    "closes": 2,
}
FIELDS = sorted({f for body in [*VALID.values(), BUDGET] for f in body} | {"id", "cost", "name"})


def test_every_kind_has_a_valid_example():
    assert set(VALID) == set(model.KINDS)
    assert len(model.KINDS) == 34
    for kind, body in VALID.items():
        model.validate(
            kind, key_for(kind, body), "eu" if kind == "charter" else "eu/de/berlin", body
        )
    model.validate("proposal", "k1", "eu", BUDGET)


# --- arbitrary values -------------------------------------------------------------------

TRICKY_TEXT = [
    "",
    " ",
    "\n",
    "x\n",
    "2027-Q1\n",
    "5\n",
    "potatoes\n",
    "eu/de\n",
    HEX + "\n",
    "\u0663",  # ARABIC-INDIC DIGIT THREE
    "\uff15",  # FULLWIDTH DIGIT FIVE
    "\u00b2",  # SUPERSCRIPT TWO: str.isdigit() says yes
    "\u0662\u0660\u0662\u0667-Q1",
    "1_000",
    "1e3",
    "NaN",
    "-0",
    "0.0000001",
    "9" * 40,
    "a\u202eb",
    "a\u200fb",
    "a\u2066b",
    "a\u2028b",
    "\x00",
    "\x85",
    "\t",
    "x" * 5000,
    "eu//de",
    "EU/DE",
]
TRICKY_INTS = [0, 1, -1, 2**48, 2**63, -(2**63) - 1, 2**64, 10**15 + 1, 10**100]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(TRICKY_INTS)
    | st.text(max_size=20)
    | st.sampled_from(TRICKY_TEXT)
    | st.binary(max_size=40)
    | st.sampled_from([b"\x01" * 32, b"\x99" * 120])
)
map_keys = (
    st.sampled_from(FIELDS)
    | st.text(max_size=8)
    | st.integers()
    | st.none()
    | st.booleans()
    | st.binary(max_size=4)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(map_keys, inner, max_size=6)
        | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=6)
    ),
    max_leaves=30,
)
bodies = st.dictionaries(st.sampled_from(FIELDS) | map_keys, values, max_size=12)


def _validate(kind, body, key=None, scope="eu/de/berlin"):
    """Validate; only a ValidationError (a refusal with a reason) may come out."""
    if key is None:
        key = key_for(kind, body)
    try:
        model.validate(kind, key, scope, body)
    except ValidationError as exc:
        reason = str(exc)
    else:
        return True
    assert reason, "a refusal says why"
    return False


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(model.KINDS)), bodies)
def test_any_body_of_any_kind_is_refused_with_a_reason(kind, body):
    _validate(kind, body)


@settings(max_examples=100)
@given(st.sampled_from(sorted(model.KINDS)), values)
def test_any_value_as_a_body_is_refused_with_a_reason(kind, body):
    _validate(kind, body)


@settings(max_examples=100)
@given(
    st.sampled_from(sorted(model.KINDS)) | st.text(max_size=8) | st.integers() | st.none(),
    values,
    values,
)
def test_any_kind_key_and_scope_are_refused_with_a_reason(kind, key, scope):
    _validate(kind, None, key=key, scope=scope)
    _validate(kind, {}, key=key, scope=scope)


def _paths(value, prefix=()):
    """Every place in a body a value sits: map entries and list items, nested."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    out = list(value)
    out[head] = _replace(out[head], rest, new)
    return out


def _delete(value, path):
    head, rest = path[0], path[1:]
    if rest:
        return _replace(value, (head,), _delete(value[head], rest))
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != head}
    return [v for i, v in enumerate(value) if i != head]


EXAMPLES = [*VALID.items(), ("proposal", BUDGET)]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EXAMPLES), st.data())
def test_a_valid_body_with_one_field_changed_is_still_refused_with_a_reason(example, data):
    kind, body = example
    paths = list(_paths(body))
    path = data.draw(st.sampled_from(paths))
    how = data.draw(st.sampled_from(["replace", "delete", "add"]))
    if how == "replace":
        changed = _replace(body, path, data.draw(values))
    elif how == "delete":
        changed = _delete(body, path)
    else:
        parent = path[:-1]
        target = body
        for p in parent:
            target = target[p]
        extra = data.draw(values)
        if isinstance(target, dict):
            changed = _replace(body, parent, {**target, data.draw(map_keys): extra})
        else:
            changed = _replace(body, parent, [*target, extra])
    _validate(kind, changed)


# --- exactness: one value, one spelling ---------------------------------------------------


def _one(kind, field, value, base=None):
    body = dict(base or VALID[kind])
    body[field] = value
    return kind, body


NOT_EXACT = [
    # trailing newlines (Python's `$` matches before one)
    _one("need", "qty", "5\n"),
    _one("need", "period", "2027-Q1\n"),
    _one("need", "period", "2027\n"),
    _one("need", "item", "potatoes\n"),
    _one("need", "unit", "kg\n"),
    _one("need", "priority", "high\n"),
    _one("node", "scope", "eu/de\n"),
    _one("node", "kind", "commune\n"),
    _one("item", "id", "oats\n"),
    _one("item", "dimension", "mass\n"),
    _one("proposal", "electorate", "eu/de\n"),
    _one("proposal", "method", "score\n"),
    _one("proposal", "options", [{"id": "a\n", "name": "A"}, {"id": "b", "name": "B"}]),
    _one("vote", "ballot", ["a\n"]),
    _one("vote", "ballot", {"a\n": 1}),
    _one("close", "hash", HEX + "\n"),
    _one("commit", "pool", HEX + "\n"),
    _one("reveal", "secret", HEX + "\n"),
    _one("reveal", "seal", HEX + "\n"),
    _one("seal", "commits", {KEYS[0] + "\n": HEX}),
    _one("seal", "commits", {KEYS[0]: HEX + "\n"}),
    _one("panel", "members", [HEX + "\n"]),
    _one("member", "features", {"age\n": "30-44"}),
    _one("member", "features", {"age": "30-44\n"}),
    _one("assembly", "scope", "eu/de\n"),
    _one("assembly", "beacon", "abcd\n"),
    _one("assembly", "committers", [KEYS[0] + "\n", *KEYS[1:]]),
    _one("assembly", "quotas", {"age\n": {"young": [0, 1]}}),
    # digits other than ASCII ones
    _one("need", "qty", "\u0665"),
    _one("need", "qty", "1\uff10"),
    _one("need", "qty", "\u00b2"),
    _one("need", "period", "\u0662\u0660\u0662\u0667-Q1"),
    _one("need", "period", "2027-Q\u0661"),
    _one("need", "period", "\uff12\uff10\uff12\uff17"),
    _one("need", "item", "item\u0663"),
    _one("node", "scope", "eu/de/\u0663"),
    _one("item", "id", "oats\u0663"),
    _one("vote", "ballot", ["p\u0663"]),
    _one("close", "hash", "\u0663" * 64),
    _one("member", "features", {"age\u0663": "30-44"}),
    # control and bidi characters in ids, names and scopes
    _one("need", "item", "pot\u202eatoes"),
    _one("need", "item", "potatoes\x00"),
    _one("node", "scope", "eu/\u200fde"),
    _one("node", "name", "Kommune\u202e"),
    _one("node", "name", "Kommune\n"),
    _one("node", "name", "Kom\x00mune"),
    _one("item", "id", "oa\tts"),
    _one("item", "name", "Oats\u2066"),
    _one("member", "pseudonym", "ana\u202e"),
    _one("member", "pseudonym", "ana\u2028"),
    _one("member", "features", {"age": "30\u202e44"}),
    _one("proposal", "title", "Bike\u202eshed"),
    _one("proposal", "options", [{"id": "a", "name": "A\u202e"}, {"id": "b", "name": "B"}]),
    _one("assembly", "quotas", {"age": {"you\u202eng": [0, 1]}}),
    _one("vote", "ballot", ["a\u200e"]),
]


@pytest.mark.parametrize(("kind", "body"), NOT_EXACT)
def test_one_spelling_only(kind, body):
    with pytest.raises(ValidationError):
        model.validate(kind, "oats" if kind == "item" else "k1", "eu/de", body)


@pytest.mark.parametrize(
    "scope",
    ["eu/de\n", "eu/de/\u0663", "eu/\u202ede", "eu/de\x00", "eu/d\u00e9", "\u0435u", " eu"],
)
def test_a_record_scope_has_one_spelling_only(scope):
    for kind in model.KINDS:
        with pytest.raises(ValidationError):
            model.validate(kind, "k1", scope, None)


def test_free_text_keeps_its_newlines():
    # Free text (a note, a proposal's text) may hold newlines and tabs; nothing else may.
    model.validate("need", "k1", "eu", {**VALID["need"], "note": "line one\n\tline two\n"})
    model.validate("proposal", "k1", "eu", {**VALID["proposal"], "text": "a\nb\n"})


# --- the quick checks decide as the full ones ----------------------------------------------

_quantities = (
    st.from_regex(r"[0-9]{1,17}(\.[0-9]{0,7})?", fullmatch=True)
    | st.sampled_from(["1000000000000000", "1000000000000000.000001", "999999999999999.999999"])
    | st.sampled_from(["0", "00.000000", "0.000001", "1e3", " 5", "5\n", "\u0663", "-1", ""])
    | st.integers(-2, 10**16)
    | st.booleans()
    | st.none()
    | st.floats()
)


def _verdict(check, value):
    try:
        check(value)
    except ValidationError as exc:
        return str(exc)
    return None


@settings(max_examples=500)
@given(st.lists(_quantities, max_size=4))
def test_check_quantity_passes_and_refuses_as_parse_quantity(values):
    # Twice each: the second time a valid quantity is found among those seen before.
    for value in values + values:
        assert _verdict(model.units.check_quantity, value) == _verdict(model.parse_quantity, value)


@settings(max_examples=300)
@given(
    st.lists(
        st.from_regex(r"[0-9]{4}(-(Q[0-9]|[0-9]{2}|W[0-9]{2}))?\n?", fullmatch=True)
        | st.from_regex(r"[a-z0-9-]{0,3}\n?", fullmatch=True)
        | st.integers(0, 3),
        max_size=4,
    )
)
def test_periods_and_item_ids_seen_before_are_decided_alike(values):
    # The sets of values found valid change no verdict: the second time through must
    # answer as the first.
    for check in (model.check_period, model.check_item_id):
        first = [_verdict(check, v) for v in values]
        assert [_verdict(check, v) for v in values] == first

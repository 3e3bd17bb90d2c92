"""The governance kinds: member, proposal, vote, close, assembly and their parts.

Record kinds of node.governance (docs/governance.md). They live here, not in
node.governance, so that every replica validates them alike whether or not it loads
the governance package. Like every validator here they see the body alone: what
needs the key or other records (is the voter a member? is the ballot valid for the
proposal's method?) is decided by the pure tallies in node.governance, identically
everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from node.errors import ValidationError
from node.model.delib_kinds import MAX_VERSION, check_ref
from node.model.fields import HEX, hex64, int_field, matches, only_fields, shown, text
from node.model.kinds import MAX_NAME_CHARS, BodyValidator
from node.model.plan_kinds import check_cap_decision
from node.model.scope import check_scope

GOV_METHODS = ("approval", "score", "ranked", "mes", "greedy")
BUDGET_METHODS = ("mes", "greedy")
MAX_TITLE_CHARS = 200
MAX_TEXT_CHARS = 4000
MAX_OPTIONS = 200
MAX_FEATURES = 16
MAX_CHUNKS = 10_000
MAX_CONTAINER_ENTRIES = 256  # node.crdt.encoding.MAX_CONTAINER_LEN
_OPTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,23}")
_FEATURE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def check_option_id(value: Any) -> str:
    """An option or project id: 1-24 letters, digits, '_', '.' or '-'."""
    if not matches(_OPTION_ID, value):
        raise ValidationError(
            f"option id {shown(value)} must be 1-24 letters, digits, '_', '.' or '-' (e.g. p3)"
        )
    return str(value)


def check_features(value: Any) -> dict[str, str]:
    """Coarse strata a member consented to share, e.g. ``{"age": "30-44"}``."""
    if not isinstance(value, dict) or len(value) > MAX_FEATURES:
        raise ValidationError(f"features must be a map of at most {MAX_FEATURES} entries")
    for k in value:
        if not matches(_FEATURE, k):
            raise ValidationError(
                f"feature name {shown(k)} must be 1-32 lowercase letters, digits, '_' or '-'"
            )
        text(value, k, 40)
    return value


def _member_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"pseudonym", "features", "consent"})
    text(body, "pseudonym", MAX_NAME_CHARS)
    if body.get("consent") is not True:
        raise ValidationError(
            "consent must be true: a member record is published with the member's consent"
        )
    if "features" in body:
        check_features(body["features"])


def _entries(body: Mapping[str, Any], name: str, *, cost: bool) -> list[str]:
    entries = body.get(name)
    if not isinstance(entries, list) or not 0 < len(entries) <= MAX_OPTIONS:
        raise ValidationError(f"{name} must be a list of 1 to {MAX_OPTIONS} entries")
    ids = []
    for e in entries:
        if not isinstance(e, dict):
            raise ValidationError(f"each of {name} is a map with id and name")
        only_fields(e, {"id", "name", "cost"} if cost else {"id", "name"})
        ids.append(check_option_id(e.get("id")))
        text(e, "name", MAX_NAME_CHARS)
        if cost:
            int_field(e, "cost", 0, 10**15)
    if len(set(ids)) != len(ids):
        raise ValidationError(f"{name} ids must be unique")
    return ids


# What a proposal's author sets; an import adds `import` (the file's hash).
PROPOSAL_FIELDS = (
    "title",
    "text",
    "method",
    "options",
    "projects",
    "budget",
    "electorate",
    "opens",
    "closes",
    "min_score",
    "max_score",
    "seats",
    "admission",
    # deliberation (node.governance.deliberation)
    "version",
    "amendments",
    "discussion",
    "from",
)


def _proposal_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {*PROPOSAL_FIELDS, "import", "cap"})
    text(body, "title", MAX_TITLE_CHARS)
    if "import" in body:
        # An imported pabulib file (its SHA-256): the proposal's electorate is then the
        # set of demo ballots its author froze, never the members of a scope.
        hex64(body["import"], "import")
    text(body, "text", MAX_TEXT_CHARS, required=False, multiline=True)
    method = body.get("method")
    if not isinstance(method, str) or method not in GOV_METHODS:
        raise ValidationError(f"method must be one of {', '.join(GOV_METHODS)}")
    check_scope(body.get("electorate"))
    opens = int_field(body, "opens", 0, 2**48 - 1)
    if int_field(body, "closes", 0, 2**48 - 1) <= opens:
        raise ValidationError("closes must be later than opens")
    if method in BUDGET_METHODS:
        if "options" in body or "seats" in body:
            raise ValidationError(
                f"a {method} proposal has projects and a budget, not options or seats"
            )
        _entries(body, "projects", cost=True)
        int_field(body, "budget", 0, 10**15)
    else:
        if "projects" in body or "budget" in body:
            raise ValidationError(f"a {method} proposal has options, not projects")
        n = len(_entries(body, "options", cost=False))
        int_field(body, "seats", 1, n)
    if method == "score":
        if int_field(body, "min_score", -1000, 1000) >= int_field(body, "max_score", -1000, 1000):
            raise ValidationError("min_score must be lower than max_score")
    elif "min_score" in body or "max_score" in body:
        raise ValidationError("only score proposals have min_score and max_score")
    if "admission" in body:
        _admission_decision(body)
    if "cap" in body:
        check_cap_decision(body)  # a cap on a resource (node.planning.caps)
    _deliberation_fields(body, opens)


def _deliberation_fields(body: Mapping[str, Any], opens: int) -> None:
    """A proposal's version (1 unless amended), the amendments it includes, when its
    discussion starts (before `opens`), and the amendment it was promoted from."""
    if "version" in body:
        int_field(body, "version", 1, MAX_VERSION)
    if "amendments" in body:
        refs = body["amendments"]
        if not isinstance(refs, list) or len(refs) > MAX_OPTIONS:
            raise ValidationError(f"amendments must list at most {MAX_OPTIONS} amendment refs")
        for r in refs:
            check_ref(r, "an included amendment")
    if "discussion" in body and int_field(body, "discussion", 0, 2**48 - 1) >= opens:
        raise ValidationError("discussion must start before opens")
    if "from" in body:
        check_ref(body["from"], "from")


def _admission_decision(body: Mapping[str, Any]) -> None:
    """A region's decision on who counts: suspend a node, or change its rule.

    The question is approval between ``yes`` and ``no`` for one seat; the electorate is
    the region it decides for (`node.governance.admission`).
    """
    decision = body["admission"]
    if not isinstance(decision, dict) or len(decision) != 1:
        raise ValidationError("admission must be {suspend: node id} or {rule: {cap, num, den}}")
    if "suspend" in decision:
        hex64(decision["suspend"], "the node to suspend")
    elif "rule" in decision:
        rule = decision["rule"]
        if not isinstance(rule, dict):
            raise ValidationError("rule must be a map with cap, num and den")
        only_fields(rule, {"cap", "num", "den"})
        int_field(rule, "cap", 1, 32)
        int_field(rule, "num", 1, 100)
        int_field(rule, "den", 1, 100)
    else:
        raise ValidationError("admission must be {suspend: node id} or {rule: {cap, num, den}}")
    options = body.get("options")
    ids = sorted(o.get("id") for o in options) if isinstance(options, list) else []
    if body.get("method") != "approval" or ids != ["no", "yes"] or body.get("seats") != 1:
        raise ValidationError(
            "an admission decision is an approval vote between yes and no for one seat"
        )
    electorate = body.get("electorate")
    if not isinstance(electorate, str) or electorate.count("/") != 2:
        raise ValidationError("an admission decision's electorate is a region (three levels)")


def _ids(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_OPTIONS:
        raise ValidationError(f"{name} must be a list of at most {MAX_OPTIONS} ids")
    ids = [check_option_id(v) for v in value]
    if len(set(ids)) != len(ids):
        raise ValidationError(f"{name} names an option twice")
    return ids


def _vote_body(body: Mapping[str, Any]) -> None:
    # The ballot's shape says which methods it fits: a list of ids (approval, mes,
    # greedy), a map id -> integer score (score), or a list of groups of ids, best
    # first (ranked). Whether it fits *this* proposal is decided at tally time.
    only_fields(body, {"ballot", "version"})
    if "version" in body:
        int_field(body, "version", 1, 10_000)  # the proposal version voted on
    ballot = body.get("ballot")
    if isinstance(ballot, dict):
        _ids(list(ballot), "ballot")
        if not all(type(v) is int and -1000 <= v <= 1000 for v in ballot.values()):
            raise ValidationError("scores must be integers from -1000 to 1000")
    elif isinstance(ballot, list) and ballot and all(isinstance(g, list) for g in ballot):
        _ids([i for g in ballot for i in g], "ballot")
        if not all(ballot):
            raise ValidationError("a ranked ballot has no empty groups")
    elif isinstance(ballot, list):
        _ids(ballot, "ballot")
    else:
        raise ValidationError(
            "ballot must be a list of option ids, a map of scores or a list of ranked groups"
        )


def _freeze_head_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"chunks", "count", "hash"})
    int_field(body, "chunks", 0, MAX_CHUNKS)
    int_field(body, "count", 0, MAX_CHUNKS * MAX_CONTAINER_ENTRIES)
    hex64(body.get("hash"), "hash")


def _closeset_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"votes"})
    votes = body.get("votes")
    if not isinstance(votes, list) or not all(isinstance(v, bytes) for v in votes):
        raise ValidationError("votes must be a list of signed vote records (bytes)")


def _volunteer_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"consent"})
    if body.get("consent") is not True:
        raise ValidationError("consent must be true")


def _assembly_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"title", "text", "scope", "size", "quotas", "committers", "beacon"})
    text(body, "title", MAX_TITLE_CHARS)
    text(body, "text", MAX_TEXT_CHARS, required=False, multiline=True)
    check_scope(body.get("scope"))
    size = int_field(body, "size", 1, MAX_CONTAINER_ENTRIES)
    quotas = body.get("quotas")
    if not isinstance(quotas, dict) or len(quotas) > MAX_FEATURES:
        raise ValidationError(
            f"quotas must map at most {MAX_FEATURES} features to {{value: [min, max]}}"
        )
    for feature, values in quotas.items():
        if not matches(_FEATURE, feature) or not isinstance(values, dict) or not values:
            raise ValidationError(f"quotas for {shown(feature)} must map values to [min, max]")
        for value, bounds in values.items():
            if not isinstance(value, str) or not 0 < len(value) <= 40:
                raise ValidationError(f"quota value {shown(value)} must be 1-40 characters")
            text({"quota value": value}, "quota value", 40)
            if (
                not isinstance(bounds, list)
                or len(bounds) != 2
                or not all(type(b) is int for b in bounds)
                or not 0 <= bounds[0] <= bounds[1] <= size
            ):
                raise ValidationError(
                    f"quota {feature}={value} must be [min, max] with "
                    f"0 <= min <= max <= size ({size})"
                )
    committers = body.get("committers")
    if not isinstance(committers, list) or not 3 <= len(committers) <= 32:
        raise ValidationError("committers must list 3 to 32 distinct node ids")
    for c in committers:
        hex64(c, "a committer")
    if len(set(committers)) != len(committers):
        raise ValidationError("committers must list 3 to 32 distinct node ids")
    if "beacon" in body and not matches(HEX, body["beacon"]):
        raise ValidationError("beacon must be a public random value in hex (<= 64 bytes)")


def _poolset_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"members"})
    members = body.get("members")
    if not isinstance(members, list):
        raise ValidationError("members must be a list of [public key, features]")
    for m in members:
        if not isinstance(m, list) or len(m) != 2 or not isinstance(m[0], bytes) or len(m[0]) != 32:
            raise ValidationError("each pool entry is [32-byte member key, features]")
        check_features(m[1])


def _commit_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"hash", "pool"})
    hex64(body.get("hash"), "hash")
    hex64(body.get("pool"), "pool")


def _seal_body(body: Mapping[str, Any]) -> None:
    # The organiser's freeze of everything the seed depends on, written after every
    # commit and before any reveal (node.governance.sortition).
    only_fields(body, {"assembly", "pool", "commits"})
    hex64(body.get("assembly"), "assembly")
    hex64(body.get("pool"), "pool")
    commits = body.get("commits")
    if not isinstance(commits, dict) or not 0 < len(commits) <= 32:
        raise ValidationError("commits must map 1 to 32 committer ids to their commit hashes")
    for committer, h in commits.items():
        hex64(committer, "a committer")
        hex64(h, "a commit hash")


def _reveal_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"secret", "seal"})
    hex64(body.get("secret"), "secret")
    hex64(body.get("seal"), "seal")


def _panel_body(body: Mapping[str, Any]) -> None:
    only_fields(body, {"members", "seed"})
    members = body.get("members")
    if not isinstance(members, list):
        raise ValidationError("members must be a list of member keys")
    for m in members:
        hex64(m, "a panel member")
    hex64(body.get("seed"), "seed")


GOV_KINDS: dict[str, BodyValidator] = {
    "member": _member_body,
    "proposal": _proposal_body,
    "vote": _vote_body,
    "close": _freeze_head_body,
    "closeset": _closeset_body,
    "volunteer": _volunteer_body,
    "assembly": _assembly_body,
    "pool": _freeze_head_body,
    "poolset": _poolset_body,
    "commit": _commit_body,
    "seal": _seal_body,
    "reveal": _reveal_body,
    "panel": _panel_body,
}

"""Turn a pabulib ``.pb`` file into a proposal, its members and their signed ballots.

For demonstrations and tests only: the voters of a published file get member keys
derived from the file's hash and their voter id, so anyone holding the file can
re-derive them (and could vote as them). Never use such keys for a real vote.

Pure: text in, an :class:`ImportPlan` out; the daemon signs and stores the records.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from node import model
from node.governance.errors import GovernanceError
from node.governance.pabulib import Instance, parse
from node.keys import Identity

__all__ = ["DEMO_DOMAIN", "ImportPlan", "demo_identity", "plan_import"]

DEMO_DOMAIN = b"allmende/pabulib-demo/1\x00"
_FEATURE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class ImportPlan:
    """What importing a file writes.

    Attributes:
        key: the proposal key, ``pb-<12 hex digits of the file hash>``.
        file_hash: SHA-256 of the file bytes (hex).
        proposal: the proposal body without ``opens``, ``closes`` and ``electorate``
            (the importing node sets them).
        members: (member identity, member record body), one per voter, file order.
        ballots: (member identity, approved project ids), one per voter.
        instance: the parsed file.
    """

    key: str
    file_hash: str
    proposal: dict[str, Any]
    members: tuple[tuple[Identity, dict[str, Any]], ...]
    ballots: tuple[tuple[Identity, list[str]], ...]
    instance: Instance


def demo_identity(file_hash: bytes, voter_id: str) -> Identity:
    """The deterministic demo key of a voter of a file (see the module docstring)."""
    seed = hashlib.sha256(DEMO_DOMAIN + file_hash + b"\x00" + voter_id.encode()).digest()
    return Identity.from_seed(seed)


def plan_import(data: bytes) -> ImportPlan:
    """Plan the records for a pabulib file.

    Raises:
        PabulibError: a malformed file (with the line number).
        GovernanceError: a well-formed file this node cannot represent (not approval
            ballots, project ids or sizes beyond the record limits).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GovernanceError(
            f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    inst = parse(text)
    vote_type = inst.meta.get("vote_type", "approval")
    if vote_type != "approval":
        raise GovernanceError(
            f"only approval ballots can be imported, this file has vote_type {vote_type}"
        )
    if len(inst.projects) > model.MAX_OPTIONS:
        raise GovernanceError(f"{len(inst.projects)} projects; at most {model.MAX_OPTIONS}")
    digest = hashlib.sha256(data).digest()
    projects = []
    for p in inst.projects.values():
        model.check_option_id(p.project_id)
        name = (p.fields.get("name") or "").strip() or f"project {p.project_id}"
        projects.append({"id": p.project_id, "name": name[: model.MAX_NAME_CHARS], "cost": p.cost})
    rule = inst.meta.get("rule", "")
    title = (
        " ".join(
            x
            for x in (
                inst.meta.get("description"),
                inst.meta.get("unit"),
                inst.meta.get("instance"),
            )
            if x
        )
        or "pabulib import"
    )
    proposal = {
        "title": title[: model.MAX_TITLE_CHARS],
        "method": "greedy" if rule.startswith("greedy") else "mes",
        "projects": projects,
        "budget": inst.budget,
        "text": f"Imported from pabulib (rule {rule or 'unknown'}); sha256 {digest.hex()}",
    }
    members = []
    ballots = []
    for v in inst.votes:
        ident = demo_identity(digest, v.voter_id)
        features = {
            k: val.strip()[:40]
            for k, val in sorted(v.fields.items())
            if _FEATURE.match(k) and val.strip()
        }
        body: dict[str, Any] = {
            "pseudonym": f"voter {v.voter_id}"[: model.MAX_NAME_CHARS],
            "consent": True,
        }
        if features:
            body["features"] = dict(list(features.items())[: model.MAX_FEATURES])
        members.append((ident, body))
        ballots.append((ident, sorted(v.vote)))
    return ImportPlan(
        f"pb-{digest.hex()[:12]}", digest.hex(), proposal, tuple(members), tuple(ballots), inst
    )

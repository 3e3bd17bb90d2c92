"""Turn a pabulib ``.pb`` file into a closed proposal whose own electorate is its voters.

For demonstrations and tests only: the voters of a published file get keys derived
from the file's hash and their voter id (:func:`demo_identity`), so anyone holding
the file can re-derive them. That is why an import never makes them members of
anything. The proposal carries ``import: <SHA-256 of the file>`` and its electorate
is exactly the ballots frozen in its close (see :mod:`node.governance.tally`): a demo
key is nobody's member, so its vote in a live proposal never counts, and a member's
vote in an imported proposal never counts either.

What an import writes, all signed by the importing node except the ballots:

* the proposal (``mes`` with add1, or ``greedy`` if the file's rule says so), open for
  one millisecond at the import time;
* its close: ``closeset`` chunks that embed every voter's signed ballot, then the
  ``close`` head. No member records and no vote slot records: the frozen ballots are
  the whole electorate, so 100,000 voters cost about 1,500 records, not 300,000.

Everything is checked before anything is signed (:func:`check_import`, the first
step of :func:`plan_import`), and the daemon saves all records in one transaction: a
file is imported whole or not at all.

Pure: bytes in, an :class:`ImportPlan` out; the daemon signs its own records (the
proposal and the close) and stores them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nacl.bindings

from node import model
from node.clock import pack_hlc
from node.crdt.record import sign_record
from node.errors import ValidationError
from node.governance.errors import GovernanceError, PabulibError
from node.governance.freeze import chunk_entries, freeze_hash
from node.governance.ledger import object_id
from node.governance.member_sign import member_seq
from node.governance.pabulib import Instance, parse
from node.governance.tally import IMPORT_FIELD
from node.keys import Identity

__all__ = [
    "DEMO_DOMAIN",
    "MAX_FILE_BYTES",
    "MAX_VOTERS",
    "ImportCheck",
    "ImportPlan",
    "check_import",
    "demo_identity",
    "import_key",
    "plan_import",
]

DEMO_DOMAIN = b"allmende/pabulib-demo/1\x00"
MAX_FILE_BYTES = 64 << 20  # what `budget import` sends; the Warsaw files are ~5 MB
MAX_VOTERS = 250_000  # Warsaw has ~100,000; each voter costs ~1 KB of memory here
# Characters a name or title may not hold (node.model.fields): replaced by a space,
# so a file whose names hold a form feed or U+2028 still imports.
_NOT_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# A signed ballot: 203 bytes for 7 approvals; per approval at most 2 + 24 bytes.
_VOTE_OVERHEAD = 220
_FILL = 8_000  # a closed chunk holds at least this many bytes (entries stay < 6 KB)
_PROGRESS_EVERY = 2048

Progress = Callable[[int, int, str], None]


def _no_progress(done: int, total: int, what: str) -> None:
    return None


@dataclass(frozen=True)
class ImportCheck:
    """A file that passed every check: nothing is signed yet.

    Attributes:
        key: the proposal key, ``pb-<12 hex digits of the file hash>``.
        digest: SHA-256 of the file bytes.
        proposal: the proposal body without ``opens`` and ``closes``.
        ballots: (voter id, approved project ids sorted), file order.
        instance: the parsed file.
    """

    key: str
    digest: bytes
    proposal: dict[str, Any]
    ballots: tuple[tuple[str, list[str]], ...]
    instance: Instance


@dataclass(frozen=True)
class ImportPlan:
    """What importing a file writes.

    Attributes:
        key: the proposal key (the node signs the proposal under it).
        file_hash: SHA-256 of the file bytes (hex).
        proposal: the complete proposal body.
        closesets: the bodies of the ``closeset`` chunks, in key order
            (``<key>/0``, ``<key>/1``...); they embed the signed ballots.
        close: the body of the ``close`` head.
        votes: the voters' signed ballots, as wire bytes (the entries of the chunks).
    """

    key: str
    file_hash: str
    proposal: dict[str, Any]
    closesets: tuple[dict[str, Any], ...]
    close: dict[str, Any]
    votes: tuple[bytes, ...]


def import_key(digest: bytes) -> str:
    """The proposal key of a file with SHA-256 `digest`."""
    return f"pb-{digest.hex()[:12]}"


def demo_identity(file_hash: bytes, voter_id: str) -> Identity:
    """The deterministic demo key of a voter of a file (see the module docstring)."""
    return Identity.from_seed(_demo_seed(file_hash, voter_id))


def _demo_seed(file_hash: bytes, voter_id: str) -> bytes:
    return hashlib.sha256(DEMO_DOMAIN + file_hash + b"\x00" + voter_id.encode()).digest()


def _clean(text: str, limit: int) -> str:
    return " ".join(_NOT_IN_NAME.sub(" ", text).split())[:limit]


def check_import(data: bytes, *, scope: str) -> ImportCheck:
    """Parse a pabulib file and check everything an import of it needs.

    Args:
        data: the file's bytes.
        scope: the importing node's scope (the proposal's nominal electorate).

    Returns:
        The checked file, ready for :func:`plan_import`.

    Raises:
        PabulibError: a malformed file, or a value this node cannot hold (a cost or
            budget above 10^15, a project id records cannot carry), with the line.
        GovernanceError: not UTF-8, not approval ballots, too many projects or
            voters, or ballots too many to freeze.
    """
    if len(data) > MAX_FILE_BYTES:
        raise GovernanceError(f"the file is {len(data):,} bytes; at most {MAX_FILE_BYTES:,}")
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
    if not inst.projects:
        raise GovernanceError("the file has no projects")
    if len(inst.projects) > model.MAX_OPTIONS:
        raise GovernanceError(f"{len(inst.projects)} projects; at most {model.MAX_OPTIONS}")
    if len(inst.votes) > MAX_VOTERS:
        raise GovernanceError(f"{len(inst.votes):,} voters; at most {MAX_VOTERS:,} per import")
    if inst.budget > 10**15:
        raise PabulibError(
            inst.meta_lines.get("budget", 0), f"budget {inst.budget} is more than 10^15"
        )
    digest = hashlib.sha256(data).digest()
    key = import_key(digest)
    projects = []
    for p in inst.projects.values():
        try:
            model.check_option_id(p.project_id)
        except ValidationError as exc:
            raise PabulibError(p.line, str(exc)) from None
        if p.cost > 10**15:
            raise PabulibError(p.line, f"cost {p.cost} is more than 10^15")
        name = _clean(p.fields.get("name") or "", model.MAX_NAME_CHARS)
        projects.append(
            {"id": p.project_id, "name": name or f"project {p.project_id}", "cost": p.cost}
        )
    rule = inst.meta.get("rule", "")
    title = _clean(
        " ".join(x for x in (inst.meta.get(k) for k in ("description", "unit", "instance")) if x),
        model.MAX_TITLE_CHARS,
    )
    proposal = {
        "title": title or "pabulib import",
        "method": "greedy" if rule.startswith("greedy") else "mes",
        "projects": projects,
        "budget": inst.budget,
        "electorate": scope,
        "text": _clean(f"Imported from pabulib (rule {rule or 'unknown'})", 1000)
        + f"; sha256 {digest.hex()}",
        IMPORT_FIELD: digest.hex(),
    }
    # Validated now with placeholder times, so that nothing is signed for a proposal
    # the node would refuse to write.
    model.validate("proposal", key, scope, {**proposal, "opens": 0, "closes": 1})
    ballots = tuple((v.voter_id, sorted(v.vote)) for v in inst.votes)
    size = sum(_VOTE_OVERHEAD + sum(len(p) + 2 for p in b) for _, b in ballots)
    chunks = max(len(ballots) // model.MAX_CONTAINER_ENTRIES, size // _FILL) + 1
    if chunks > model.MAX_CHUNKS:
        raise GovernanceError(
            f"{len(ballots):,} ballots need about {chunks:,} close chunks; "
            f"a close holds at most {model.MAX_CHUNKS:,}"
        )
    return ImportCheck(key, digest, proposal, ballots, inst)


def plan_import(
    data: bytes,
    *,
    origin: bytes,
    scope: str,
    opens: int,
    progress: Progress = _no_progress,
) -> ImportPlan:
    """Check a pabulib file whole (:func:`check_import`), then sign every voter's
    ballot with its demo key and freeze them.

    The parsed file is dropped before this returns: an owner that runs this in a
    worker thread frees its ~100,000 objects there, not on its event loop.

    Args:
        data: the file's bytes.
        origin: the importing node's key (part of the proposal id).
        scope: the importing node's scope (the records' scope).
        opens: the import time in ms: the proposal is open for ``[opens, opens + 1]``
            and every ballot is stamped at ``opens``.
        progress: called with (done, total, "signing") now and then; may be called
            from a worker thread.

    Returns:
        The proposal and close bodies and the signed ballots.

    Raises:
        PabulibError, GovernanceError: see :func:`check_import`; nothing is signed then.
    """
    checked = check_import(data, scope=scope)
    pid = object_id(origin, checked.key)
    total = len(checked.ballots)
    seq, hlc = member_seq(opens, 0), pack_hlc(opens, 0)
    votes: list[bytes] = []
    progress(0, total, "signing")
    for i, (voter, ballot) in enumerate(checked.ballots):
        # nacl directly: the same Ed25519 keys as demo_identity, at half the cost.
        public, secret = nacl.bindings.crypto_sign_seed_keypair(_demo_seed(checked.digest, voter))

        def signer(message: bytes, secret: bytes = secret) -> bytes:
            return bytes(nacl.bindings.crypto_sign(message, secret)[:64])

        record = sign_record(signer, public, "vote", pid, seq, hlc, scope, {"ballot": ballot})
        votes.append(record.raw)  # the bytes are what is frozen; drop the rest early
        if (i + 1) % _PROGRESS_EVERY == 0:
            progress(i + 1, total, "signing")
    progress(total, total, "signing")
    chunks = chunk_entries(votes)
    if len(chunks) > model.MAX_CHUNKS:  # pragma: no cover - check_import estimates above
        raise GovernanceError(f"{len(chunks):,} close chunks; at most {model.MAX_CHUNKS:,}")
    return ImportPlan(
        key=checked.key,
        file_hash=checked.digest.hex(),
        proposal={**checked.proposal, "opens": opens, "closes": opens + 1},
        closesets=tuple({"votes": c} for c in chunks),
        close={"chunks": len(chunks), "count": len(votes), "hash": freeze_hash(votes)},
        votes=tuple(votes),
    )

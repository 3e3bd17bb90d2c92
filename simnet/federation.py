"""The federation a simulated network belongs to, founded before the run starts.

Every virtual node runs admission as the daemon does (`node.governance.admission`), so
its records count only once its region has admitted it. A run starts from an
established federation, the way a daemon starts from its store: the charter's
signatures, every node record and the endorsements are loaded into each replica (the
records of the partitions it follows) before the first event. What the run measures is
then how needs and capacities replicate among admitted nodes (and, in the sybil
preset, that nothing of the strangers counts).

The founders are the first node of each of the first 32 regions. The first node of
any other region is endorsed by the first founder (at the federation's root, where
every node sees it); every other node by its region's first node. The charter's rule
asks one endorsement (``cap = 1``): a lax federation, which only the honest nodes of
a run ever endorse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from node import model
from node.crdt.record import Record, sign_record
from node.governance.admission import Charter, Rule
from node.keys import Identity
from node.model.trust_kinds import MAX_FOUNDERS
from simnet.workload import NodeSpec

SEQ = 1  # the preloaded records are each origin's first


def found(specs: Sequence[NodeSpec]) -> tuple[Charter, dict[str, list[Record]]]:
    """The charter of the run's nodes and, per partition, the records that found it.

    Args:
        specs: the honest nodes of the run.

    Returns:
        (charter, partition -> preloaded records).
    """
    first: dict[str, NodeSpec] = {}
    for spec in specs:
        first.setdefault(spec.region, spec)
    founders = list(first.values())[:MAX_FOUNDERS]
    charter = Charter.of("Simulated federation", [_id(s).public for s in founders], Rule(cap=1))
    lead = _id(founders[0])
    by_part: dict[str, list[Record]] = {}

    def add(r: Record) -> None:
        by_part.setdefault(model.partition_of(r.scope), []).append(r)

    seqs: dict[bytes, int] = {}

    def sign(who: Identity, kind: str, key: str, scope: str, body: dict[str, Any]) -> Record:
        seq = seqs[who.public] = seqs.get(who.public, 0) + 1
        return sign_record(who.signer(), who.public, kind, key, seq, 0, scope, body)

    root = specs[0].scope.split("/")[0]
    for f in founders:
        add(sign(_id(f), "charter", charter.id, root, charter.body()))
    for spec in specs:
        ident = _id(spec)
        body = {"name": spec.name, "kind": spec.kind, "scope": spec.scope}
        add(sign(ident, "node", "self", spec.scope, body))
        head = first[spec.region]
        if spec is head:
            if spec not in founders:  # a region beyond the founders': the lead vouches
                # at the root, as the daemon writes a founder's endorsement of another
                # region's node: every region sees it (it makes the node a root)
                add(sign(lead, "endorse", ident.public.hex(), root, {}))
        else:
            add(sign(_id(head), "endorse", ident.public.hex(), head.scope, {}))
    return charter, by_part


def _id(spec: NodeSpec) -> Identity:
    return Identity.from_seed(spec.seed)

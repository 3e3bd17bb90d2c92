"""The gossip model's seen cache (one bit per message and node in `MessageStore`)
answers as a set of ids per node: the same duplicates, first deliveries and verdicts."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from simnet.events import Scheduler
from simnet.gossip import GossipNode, GossipStats, MessageStore, Verdict
from simnet.network import VirtualNetwork
from simnet.scenario import Gossip, Network

VERDICTS = [Verdict.ACCEPT, Verdict.IGNORE, Verdict.REJECT, Verdict.RETRY]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 20),
    st.lists(st.tuples(st.integers(0, 19), st.integers(0, 5), st.sampled_from(VERDICTS))),
)
def test_seen_bits_answer_as_a_set_per_node(n, steps):
    """Messages published by node 0, then delivered in any order with any verdict,
    against the rule of a set per node: seen once judged, forgotten on RETRY."""
    sched = Scheduler()
    net = VirtualNetwork(n, Network(), sched, random.Random(0))
    for i in range(1, n):
        net.connect(0, i)
    store, stats = MessageStore(n), GossipStats()
    verdict: list[Verdict] = [Verdict.ACCEPT]
    nodes: list[GossipNode] = []
    for i in range(n):
        nodes.append(
            GossipNode(
                i,
                ("t",),
                [("t",)] * n,
                nodes,
                net,
                store,
                Gossip(),
                random.Random(i),
                stats,
                lambda _topic, _data: verdict[0],
            )
        )
    mids = [nodes[0].publish("t", bytes([k]) * 120) for k in range(6)]
    model = [set() for _ in range(n)]
    model[0].update(mids)
    duplicates = first = 0
    for node, k, v in steps:
        node %= n
        verdict[0] = v
        nodes[node].on_message(mids[k], 0)
        if mids[k] in model[node]:
            duplicates += 1
            continue
        first += 1
        if v is not Verdict.RETRY:
            model[node].add(mids[k])
    assert (stats.duplicates, stats.first_deliveries) == (duplicates, first)
    for i in range(n):
        assert {m for m in mids if nodes[i].has_seen(m)} == model[i]
    # A node asks for exactly the ids it has not seen (IWANT after IHAVE).
    for i in range(1, n):
        before = stats.iwant
        nodes[i].on_ihave(mids, 0)
        assert stats.iwant - before == (1 if set(mids) - model[i] else 0)

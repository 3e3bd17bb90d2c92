"""A seeded slice of the edge fuzzer (bench/fuzz_edge.py runs 10^6 inputs): mutated
records, gossip batches, a message in every sync state, control requests. Each one is
refused with a reason or taken; none crashes. (Timing is the bench's to report.)"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import fuzz_edge


def test_mutated_inputs_never_crash():
    report = fuzz_edge.run(4000, seed=7)
    assert report.inputs == 4000
    assert report.crashes == [], report.crashes[0][2]


def test_every_sync_state_is_a_target():
    import random

    names = {t.name for t in fuzz_edge.build_targets(random.Random(1))}
    for state in (
        "wait-hello",
        "wait-buckets",
        "wait-entries",
        "wait-delta1",
        "wait-delta2",
        "wait-delta3",
    ):
        assert f"sync {state}" in names
    assert {"record", "gossip"} <= names

"""A seeded slice of the edge fuzzer (bench/fuzz_edge.py runs 10^6 inputs): mutated
records, gossip batches, a message in every sync state, control requests sent to the
real control server. Each one is refused with a reason or taken; none crashes. (Timing
is the bench's to report.)"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import fuzz_edge
import pytest

from node.crdt.sync import State

# Every state in which a session waits for a peer's message (START and DONE take none).
WAITING = [s.value for s in State if s not in (State.START, State.DONE)]
TARGETS = ["record", "gossip", "control", *(f"sync {state}" for state in WAITING)]


def test_every_sync_state_and_the_control_socket_are_targets():
    with fuzz_edge.edge_targets(1) as targets:
        names = {t.name for t in targets}
    assert len(WAITING) == 4
    for name in TARGETS:
        assert name in names, f"the fuzzer has no {name!r} target"


def test_mutated_inputs_never_crash():
    report = fuzz_edge.run(4500, seed=7)
    assert report.inputs == 4500
    assert report.crashes == [], report.crashes[0][2]
    for name in TARGETS:
        assert report.per_target[name] >= 300, f"the slice fed {name!r} too little"


def test_control_inputs_reach_the_argument_checks():
    with fuzz_edge.edge_targets(7) as targets:
        [control] = [t for t in targets if t.name == "control"]
        report = fuzz_edge._run([control], 600, fuzz_edge.random.Random(7), progress=False)
    assert report.crashes == [], report.crashes[0][2]
    stats = control.stats
    assert stats["ok"] > 0  # well-formed requests pass
    assert stats["unknown argument"] + stats["unknown control operation"] > 0
    assert stats["argument must"] > 0  # of the wrong type, or out of range
    assert stats["argument is"] > 0  # missing, or too long
    assert stats["the request is"] > 0  # nested too deeply, or too long a line


def test_a_control_server_failure_is_a_crash():
    # The harness must not count an internal error, or silence, as a refusal.
    def broken(op, spec, args):
        if op == "status":
            raise RuntimeError("a bug in the handler")
        return {}

    with fuzz_edge.ControlServer(check=broken) as server:
        with pytest.raises(fuzz_edge.ControlCrash, match="a bug in the handler"):
            server.request(b'{"op": "status"}\n')
        assert server.request(b'{"op": "peers"}\n') == "ok"
        assert server.request(b"") == "silent probe"

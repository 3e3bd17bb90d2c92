"""Fuzz the edge: mutated records, gossip batches, every sync state, control requests.

Run: python bench/fuzz_edge.py [--inputs 1000000] [--seed 1]

Seeds are real inputs (records, a gossip batch, every message of real anti-entropy
sessions between replicas that differ by tails, scattered records, an equivocation
and evidence; control request lines); each input is a seed mutated by a few random
byte-level or structure-level edits. An input passes if its target returns or raises
`AllmendeError` (a refusal with a reason); anything else is a crash. Each input is
timed; the run reports crashes and inputs slower than 50 ms. `tests/test_fuzz_edge.py`
runs a small seeded slice of the same code.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from factories import Author, identities

from node.core import NodeCore, Source, encode_batch
from node.crdt.replica import Replica
from node.crdt.sync import Role, SyncSession
from node.errors import AllmendeError
from node.identity import Identity

NOW = 1_800_000_000_000
SCOPE = "eu/de/berlin/x"
PART = "eu/de/berlin"
PARTS = ["eu", "eu/de", PART]
SLOW = 0.050
_INTERESTING = [
    0x00,
    0x01,
    0x7F,
    0x80,
    0x8F,
    0x90,
    0x9F,
    0xC0,
    0xC1,
    0xC4,
    0xCC,
    0xCF,
    0xD9,
    0xDC,
    0xDD,
    0xDE,
    0xDF,
    0xE0,
    0xFF,
]


def _core(seed: int) -> NodeCore:
    me = Identity.from_seed(seed.to_bytes(32, "big"))
    replica = Replica(now_ms=lambda: NOW)
    return NodeCore(me.public, me.signer(), SCOPE, replica, lambda: NOW, rng=random.Random(seed))


@dataclass
class Target:
    """A named entry point and the seeds it is fed."""

    name: str
    seeds: list[bytes]
    run: Callable[[bytes], object]
    stats: Counter[str] = field(default_factory=Counter)


def _label(result: Any) -> str:
    if result.rejected:
        return ",".join(sorted(result.rejected))
    return "stored" if result.stored else "known"


def build_targets(rng: random.Random) -> list[Target]:
    authors = [Author(i, SCOPE) for i in identities(12, seed=21)]
    records = [a.need(f"n{k}", qty=str(k + 1)) for a in authors for k in range(4)]
    records += [a.capacity(f"c{k}", qty="7") for a in authors[:4] for k in range(3)]
    records.append(authors[0].write("need", "n1", None))
    liar = authors[1]
    seq = liar.seq + 1
    one, two = liar.need("x", qty="1", seq=seq), liar.capacity("y", qty="2", seq=seq)

    # Two replicas that differ in every way a session handles.
    a, b = Replica(now_ms=lambda: NOW), Replica(now_ms=lambda: NOW)
    for k, r in enumerate(records):
        if k % 5:
            a.insert_verified(r)
        if k % 3:
            b.insert_verified(r)
    a.insert_verified(one)
    b.insert_verified(two)
    core_a, core_b = _core(1), _core(2)
    core_a.replica, core_b.replica = a, b

    targets: list[Target] = []
    receiver = _core(3)

    def run_record(data: bytes) -> object:
        return _label(receiver.ingest([data], Source.SYNC))

    targets.append(Target("record", [r.raw for r in records[:10]] + [one.raw, two.raw], run_record))

    gossip_core = _core(4)

    def run_gossip(data: bytes) -> object:
        return _label(gossip_core.validate_gossip(PART, data))

    targets.append(Target("gossip", [encode_batch([r.raw for r in records[:20]])], run_gossip))

    # Record a real session and keep a copy of each side just before each message.
    init = SyncSession(a, PARTS, Role.INITIATOR, salt=b"fuzz-salt-16byte")
    resp = SyncSession(b, PARTS, Role.RESPONDER)
    checkpoints: list[tuple[str, SyncSession, NodeCore, bytes]] = []
    msg = init.generate_message()
    sender, receiver_s, cores = init, resp, (core_a, core_b)
    while msg is not None:
        to_core = cores[1] if receiver_s is resp else cores[0]
        checkpoints.append((receiver_s.state.value, copy.copy(receiver_s), to_core, msg))
        receiver_s.receive_message(msg)
        to_core.ingest_received(receiver_s.take_received(), receiver_s.partitions)
        msg = receiver_s.generate_message()
        sender, receiver_s = receiver_s, sender
    assert init.done, "the seed session must complete"
    assert resp.done, "the seed session must complete"

    for state, snapshot, core, seed in checkpoints:

        def run_sync(
            data: bytes, snapshot: SyncSession = snapshot, core: NodeCore = core
        ) -> object:
            s = copy.copy(snapshot)
            s._received = type(s._received)()
            try:
                s.receive_message(data)
                s.generate_message()
            finally:
                core.ingest_received(s.take_received(), s.partitions or PARTS)
            return None

        targets.append(Target(f"sync {state}", [seed], run_sync))

    control = control_target()
    if control is not None:
        targets.append(control)
    return targets


def control_target() -> Target | None:
    """The control socket's request parser, if it has a pure one."""
    from node import control

    parse = getattr(control, "parse_request", None)
    if parse is None:
        return None
    seeds = [
        json.dumps({"op": "balance", "args": {"scope": "eu/de", "depth": 2}}).encode(),
        json.dumps(
            {
                "op": "post",
                "args": {
                    "kind": "need",
                    "item": "potatoes",
                    "qty": "5",
                    "unit": "kg",
                    "period": "2027-Q1",
                },
            }
        ).encode(),
        json.dumps({"op": "status", "payload": 10, "progress": True}).encode(),
    ]
    return Target("control", seeds, parse)


# --- mutation -------------------------------------------------------------------------


def mutate(data: bytes, rng: random.Random, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 5))):
        op = rng.randrange(9)
        n = len(buf)
        if op == 0 and n:
            buf[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[rng.randrange(n)] = rng.choice(_INTERESTING)
        elif op == 2:
            pos = rng.randrange(n + 1)
            buf[pos:pos] = rng.randbytes(rng.choice((1, 2, 4, 8, 33)))
        elif op == 3 and n:
            pos = rng.randrange(n)
            del buf[pos : pos + rng.choice((1, 2, 4, 16, 64))]
        elif op == 4 and n:
            a = rng.randrange(n)
            chunk = buf[a : a + rng.choice((2, 8, 64, 512))]
            pos = rng.randrange(n + 1)
            buf[pos:pos] = chunk * rng.choice((1, 2, 16))
        elif op == 5 and n:
            del buf[rng.randrange(n) :]
        elif op == 6:
            other = rng.choice(seeds)
            cut = rng.randrange(len(other) + 1)
            buf = buf[: rng.randrange(n + 1)] + bytearray(other[cut:])
        elif op == 7:
            buf = bytearray(_mutate_structure(bytes(buf), rng))
        elif op == 8 and n:
            pos = rng.randrange(n)
            buf[pos : pos + 1] = rng.choice(
                (
                    b"\xcd\xff\xff",
                    b"\xce\xff\xff\xff\xff",
                    b"\xdd\x7f\xff\xff\xff",
                    b"\xc6\xff\xff\xff\xff",
                )
            )
    return bytes(buf)


def _mutate_structure(data: bytes, rng: random.Random) -> bytes:
    """Decode as msgpack (or JSON) if possible, change one value, encode again."""
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
        enc: Callable[[Any], bytes] = lambda v: msgpack.packb(v, use_bin_type=True)  # noqa: E731
    except Exception:
        try:
            value = json.loads(data)
            enc = lambda v: json.dumps(v).encode()  # noqa: E731
        except Exception:
            return data
    choices = [
        lambda v: 2**63,
        lambda v: -1,
        lambda v: b"\x00" * 40,
        lambda v: "x" * 300,
        lambda v: [v] * 40,
        lambda v: {"t": v},
        lambda v: None,
        lambda v: True,
        lambda v: [[[[v]]]],
    ]

    def walk(v: Any, depth: int) -> Any:
        if isinstance(v, dict) and v and rng.random() < 0.8:
            k = rng.choice(list(v))
            v = dict(v)
            v[k] = walk(v[k], depth + 1)
            return v
        if isinstance(v, list) and v and rng.random() < 0.8:
            i = rng.randrange(len(v))
            v = list(v)
            v[i] = walk(v[i], depth + 1)
            return v
        return rng.choice(choices)(v)

    try:
        return enc(walk(value, 0))
    except Exception:
        return data


# --- running --------------------------------------------------------------------------


@dataclass
class Report:
    inputs: int = 0
    crashes: list[tuple[str, bytes, str]] = field(default_factory=list)
    slow: list[tuple[str, int, float]] = field(default_factory=list)
    worst: float = 0.0


def run(n: int, seed: int, progress: bool = False) -> Report:
    rng = random.Random(seed)
    targets = build_targets(rng)
    report = Report()
    t0 = time.perf_counter()
    for k in range(n):
        target = targets[k % len(targets)]
        data = mutate(rng.choice(target.seeds), rng, target.seeds)
        start = time.perf_counter()
        try:
            label = target.run(data)
            target.stats[label if isinstance(label, str) else "ok"] += 1
        except AllmendeError as exc:
            target.stats[getattr(exc, "reason", "refused")] += 1
        except Exception:
            report.crashes.append((target.name, data, traceback.format_exc(limit=6)))
        took = time.perf_counter() - start
        report.worst = max(report.worst, took)
        if took > SLOW:
            report.slow.append((target.name, len(data), took))
        report.inputs += 1
        if progress and k and k % 50_000 == 0:
            rate = k / (time.perf_counter() - t0)
            print(
                f"  {k:,} inputs, {len(report.crashes)} crashes, {len(report.slow)} slow, "
                f"{rate:,.0f}/s",
                flush=True,
            )
    if progress:
        for t in targets:
            print(f"  {t.name:22} {dict(t.stats.most_common(6))}")
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t = time.perf_counter()
    report = run(args.inputs, args.seed, progress=True)
    took = time.perf_counter() - t
    print(
        f"{report.inputs:,} inputs in {took:.0f} s: {len(report.crashes)} crashes, "
        f"{len(report.slow)} over {SLOW * 1000:.0f} ms (worst {report.worst * 1000:.1f} ms)"
    )
    for name, data, tb in report.crashes[:5]:
        print(f"--- crash in {name} on {data[:80]!r}\n{tb}")
    for name, size, secs in sorted(report.slow, key=lambda s: -s[2])[:5]:
        print(f"--- slow: {name}, {size} bytes, {secs * 1000:.1f} ms")
    sys.exit(1 if report.crashes or report.slow else 0)


if __name__ == "__main__":
    main()

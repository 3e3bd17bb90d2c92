"""Adversarial inputs against the node's edge: CPU and memory per input byte.

Run: python bench/bench_edge.py [--quick]

Each input is what a hostile peer can send: gossip messages (all stages of
`NodeCore.validate_gossip`: decode, screen, verify, apply), a message in every state
of an anti-entropy session (the step plus the merge of what it brought), single
records, and control requests. For each: process CPU time per input byte (best of a
few runs) and the peak of Python allocations (tracemalloc, a separate run) per
input byte. Goals (issue 9): <= 10 us/byte, <= 20 bytes/byte.

What the model leaves out: libp2p's own framing and Noise decryption before a
message reaches us, and the thread hop the daemon adds (it runs sync steps and large
verifications in worker threads: this measures the work, not where it runs).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from factories import Author, identities

from node.core import NodeCore, encode_batch
from node.crdt.encoding import Writer, encode_varint
from node.crdt.record import DOMAIN, decode_record
from node.crdt.replica import Replica
from node.crdt.sync import MAX_MESSAGE_BYTES, Role, State, SyncSession
from node.errors import AllmendeError
from node.identity import Identity

NOW = 1_800_000_000_000
SCOPE = "eu/de/berlin/x"
PART = "eu/de/berlin"
PARTS = ["eu", "eu/de", PART]


def _core(n_records: int = 2000) -> NodeCore:
    """A node holding `n_records` records of 100 origins."""
    replica = Replica(now_ms=lambda: NOW)
    authors = [Author(i, SCOPE) for i in identities(100, seed=11)]
    for k in range(n_records):
        replica.insert_verified(authors[k % 100].need(f"n{k}", qty=str(k + 1)))
    for p in PARTS:  # digests are cached state, not work an input causes
        replica.partition(p).root()
        for op in replica.partition(p).origins.values():
            op.ordered()
    me = Identity.from_seed(b"\x07" * 32)
    return NodeCore(me.public, me.signer(), SCOPE, replica, lambda: NOW, rng=random.Random(1))


def _forged(n: int, seed: int = 5) -> list[bytes]:
    """Well-formed records whose signatures do not verify (each must be checked)."""
    rng = random.Random(seed)
    author = Author(identities(1, seed=seed)[0], SCOPE)
    out = []
    for k in range(n):
        r = author.need(f"f{k}", qty=str(rng.randrange(1, 10**6)))
        raw = bytearray(r.raw)
        raw[-1] ^= 1
        out.append(bytes(raw))
    return out


def _minimal_forged(n: int) -> list[bytes]:
    """Tombstones: the smallest records there are, each needing a verification."""
    out = []
    for k in range(n):
        fields = [2, bytes([k % 256]) * 32, "need", f"k{k}", 1 + k, 0, "eu", None, b"\0" * 64]
        out.append(msgpack.packb(fields, use_bin_type=True))
    return out


def _bomb_record() -> bytes:
    ident = identities(1, seed=3)[0]
    body = {"a": [[[[]] * 15] * 15] * 15, "b": [[]] * 200}
    fields = [2, ident.public, "need", "k", 1, 0, "eu", body]
    unsigned = msgpack.packb(fields, use_bin_type=True)
    return msgpack.packb([*fields, ident.sign(DOMAIN + unsigned)], use_bin_type=True)


def _batch(raws: list[bytes], limit: int = 60 * 1024) -> bytes:
    out, size = [], 1
    for raw in raws:
        if size + len(raw) + 3 > limit:
            break
        out.append(raw)
        size += len(raw) + 3
    return encode_batch(out)


def _blob(raws: list[bytes], limit: int) -> bytes:
    w = Writer()
    for raw in raws:
        if w.size + len(raw) + 3 > limit:
            break
        w.blob(raw)
    return w.getvalue()


# --- the inputs -------------------------------------------------------------------


def gossip_inputs(quick: bool) -> list[tuple[str, bytes]]:
    n = 300 if quick else 600
    return [
        ("gossip: random bytes", os.urandom(60 * 1024)),
        ("gossip: 60 KiB of forged records", _batch(_forged(n))),
        ("gossip: 60 KiB of minimal forged tombstones", _batch(_minimal_forged(n))),
        ("gossip: container-bomb records", _batch([_bomb_record()] * 20)),
        ("gossip: one container-bomb record", _batch([_bomb_record()])),
        ("gossip: 60 KiB framing of empty records", b"\x02" + b"\x00" * (60 * 1024 - 1)),
    ]


def sync_inputs(quick: bool) -> list[tuple[str, State, bytes]]:
    big = MAX_MESSAGE_BYTES // (8 if quick else 1) - 300 * 1024
    forged = _forged(big // 300 + 1)
    units = Writer()
    for k in range(big // 40):
        units.fixed(bytes((0,)) + k.to_bytes(16, "big"))
        units.varint(5)
        units.varint(9)
        units.fixed(b"\x00" * 8)
    idlist = Writer()
    idlist.fixed(bytes((0,)) + b"\x01" * 16)
    n_ids = big // 18
    idlist.varint(n_ids)
    for _ in range(n_ids):
        idlist.varint(1)
        idlist.fixed(os.urandom(16))
    wants = Writer()
    wants.fixed(bytes((0,)) + b"\x02" * 16)
    wants.varint(big // 8)
    wants.fixed(os.urandom(8 * (big // 8)))
    pairs = Writer()
    for a, b in zip(forged[:1500:2], forged[1:1500:2], strict=False):
        pairs.blob(a)
        pairs.blob(b)
    hello = {
        "t": "hello",
        "v": 2,
        "salt": b"s" * 16,
        "roots": [[f"eu/p{k}", b"\x00" * 16, 10**6, b"\x00" * 16] for k in range(64)],
    }
    pack = msgpack.packb
    return [
        ("sync hello: 64 partitions", State.WAIT_HELLO, pack(hello)),
        ("sync hello: 8 MiB of empty arrays", State.WAIT_HELLO, b"\xdc\xff\xff" + b"\x90" * big),
        (
            "sync entries: every bucket, max entries",
            State.WAIT_ENTRIES,
            pack(
                {
                    "t": "entries",
                    "b": b"".join(i.to_bytes(2, "big") for i in range(1024)),
                    "e": units.getvalue(),
                    "ev": b"",
                }
            ),
        ),
        (
            "sync delta1: one huge id list",
            State.WAIT_DELTA1,
            pack({"t": "delta1", "r": b"", "l": idlist.getvalue(), "a": b""}),
        ),
        (
            "sync delta1: a list claiming 2^40 ids",
            State.WAIT_DELTA1,
            pack(
                {
                    "t": "delta1",
                    "r": b"",
                    "l": b"\x00" + b"\x01" * 16 + encode_varint(2**40),
                    "a": b"",
                }
            ),
        ),
        (
            "sync delta2: max wants",
            State.WAIT_DELTA2,
            pack({"t": "delta2", "r": b"", "w": wants.getvalue()}),
        ),
        (
            "sync delta3: max forged records",
            State.WAIT_DELTA3,
            pack({"t": "delta3", "r": _blob(forged, big)}),
        ),
        (
            "sync buckets: max forged evidence",
            State.WAIT_BUCKETS,
            pack(
                {
                    "t": "buckets",
                    "parts": [],
                    "evparts": [PART],
                    "bits": 0,
                    "h": b"",
                    "ev": pairs.getvalue(),
                }
            ),
        ),
    ]


def record_inputs() -> list[tuple[str, bytes]]:
    ident = identities(1, seed=9)[0]
    deep: object = "x"
    for _ in range(5):
        deep = [deep] * 8
    fields = [2, ident.public, "need", "k", 1, 0, "eu", {"a": deep}]
    unsigned = msgpack.packb(fields, use_bin_type=True)
    fan = msgpack.packb([*fields, ident.sign(DOMAIN + unsigned)], use_bin_type=True)
    return [
        ("record: container bomb", _bomb_record()),
        ("record: fan-out nesting", fan),
        ("record: 16 KiB random", os.urandom(16 * 1024)),
        (
            "record: 16 KiB string",
            msgpack.packb(
                [2, b"o" * 32, "need", "k", 1, 0, "eu", {"note": "x" * 16000}, b"s" * 64]
            ),
        ),
    ]


# --- running ----------------------------------------------------------------------


def _gossip_fn(data: bytes) -> Callable[[], object]:
    core = _core()
    return lambda: core.validate_gossip(PART, data)


def _sync_fn(state: State, data: bytes) -> Callable[[], object]:
    core = _core()
    initiator = state in (State.WAIT_BUCKETS, State.WAIT_DELTA1, State.WAIT_DELTA3)
    role = Role.INITIATOR if initiator else Role.RESPONDER
    session = SyncSession(core.replica, PARTS, role, salt=b"s" * 16)
    session.state = state
    session.partitions = [PART]
    session._bits = 10

    def run() -> object:
        try:
            session.receive_message(data)
            session.generate_message()
        except AllmendeError:
            pass
        return core.ingest_received(session.take_received(), session.partitions)

    return run


def _record_fn(data: bytes) -> Callable[[], object]:
    def run() -> object:
        try:
            return decode_record(data)
        except AllmendeError:
            return None

    return run


def measure(make: Callable[[], Callable[[], object]], repeat: int) -> tuple[float, int]:
    best = float("inf")
    for _ in range(repeat):
        fn = make()
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    fn = make()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return best, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller inputs, one repeat")
    args = ap.parse_args()
    repeat = 1 if args.quick else 3
    rows: list[tuple[str, int, float, int]] = []
    for name, data in gossip_inputs(args.quick):
        cpu, mem = measure(lambda d=data: _gossip_fn(d), repeat)
        rows.append((name, len(data), cpu, mem))
    for name, state, data in sync_inputs(args.quick):
        cpu, mem = measure(lambda s=state, d=data: _sync_fn(s, d), repeat)
        rows.append((name, len(data), cpu, mem))
    for name, data in record_inputs():
        cpu, mem = measure(lambda d=data: _record_fn(d), repeat)
        rows.append((name, len(data), cpu, mem))
    print(f"{'input':48} {'bytes':>10} {'CPU ms':>9} {'us/byte':>8} {'peak KiB':>9} {'B/byte':>7}")
    for name, n, cpu, mem in rows:
        print(
            f"{name:48} {n:>10,} {cpu * 1e3:>9.1f} {cpu * 1e6 / n:>8.3f} "
            f"{mem / 1024:>9.1f} {mem / n:>7.2f}"
        )
    # Per byte for inputs of 4 KiB and more; below, fixed costs (a session, a Counter,
    # a decoded message) dominate, so the absolute peak is what to read.
    large = [r for r in rows if r[1] >= 4096]
    small = [r for r in rows if r[1] < 4096]
    cpu = max(large, key=lambda r: r[2] / r[1])
    mem = max(large, key=lambda r: r[3] / r[1])
    print(f"worst CPU: {cpu[2] * 1e6 / cpu[1]:.3f} us/byte ({cpu[0]}); goal <= 10")
    print(f"worst memory: {mem[3] / mem[1]:.2f} bytes/byte ({mem[0]}); goal <= 20")
    if small:
        fixed = max(small, key=lambda r: r[3])
        print(f"largest peak of an input under 4 KiB: {fixed[3] / 1024:.1f} KiB ({fixed[0]})")


if __name__ == "__main__":
    main()

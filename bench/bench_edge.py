"""Adversarial inputs against the node's edge: CPU and memory per input byte.

Run: python bench/bench_edge.py [--quick]

Each input is what a hostile peer (or local client) can send, per surface: gossip
messages (all stages of `NodeCore.validate_gossip`: batch decode, screen, verify,
apply); a message in every state of an anti-entropy session in which it waits for one
(the step, the reply it generates, and the merge of what it brought); single records
(`decode_record`); and control requests, sent to the real `node.control.serve` on a
Unix socket whose handler checks the op's arguments against `node.ops.TABLE` as the
daemon does (the harness is `fuzz_edge.ControlServer`). For each: process CPU time per
input byte (best of a few runs; the control server's thread counts) and the peak of
Python allocations (tracemalloc, a separate run, every thread) per input byte. Goals
(issue 9): <= 10 us/byte, <= 20 bytes/byte.

Per byte is read for inputs of 4 KiB and more; below that, fixed costs (a session, a
connection, a decoded message, msgpack's packing buffer) dominate, and the absolute
peak is what to read.

What the model leaves out: libp2p's own framing and Noise decryption before a message
reaches us; the thread hop the daemon adds (it runs sync steps and large verifications
in worker threads: this measures the work, not where it runs); what the operations do
after their arguments are checked (they run on the operator's own requests); memory
outside Python's allocator (kernel socket buffers, libsodium).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from factories import Author, identities
from fuzz_edge import PAYLOAD_PROBE, PROBE_PAYLOAD, ControlServer

from node import control
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


def _dense_record(k: int) -> bytes:
    """A record (forged: it is decoded, then refused) of ~15 KiB that decodes into as many
    objects as the decode budget lets through: 5,000 distinct two-character strings."""
    body = {"a": [[f"{(i + k) % 100:02}" for i in range(200)] for _ in range(25)]}
    raw = bytearray(_signed(body, seed=10 + k, scope=SCOPE))
    raw[-1] ^= 1
    return bytes(raw)


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
        ("gossip: records dense in small strings", _batch([_dense_record(k) for k in range(8)])),
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
    # One unit (index 0), one unbounded range listing as many (seq, id, slot) as fit.
    idlist = Writer()
    n_ids = big // 10
    idlist.varint(0)
    idlist.varint(1)
    idlist.varint(0)
    idlist.varint(0)
    idlist.varint(2 * n_ids + 1)
    for _ in range(n_ids):
        idlist.varint(1)
        idlist.fixed(os.urandom(8))
    # As many one-seq fingerprint ranges of unit 0 as fit, each claimed to differ.
    fps = Writer()
    n_fps = big // 8
    fps.varint(0)
    fps.varint(n_fps)
    for _ in range(n_fps):
        fps.varint(0)
        fps.varint(1)
        fps.varint(2 * 7)
        fps.fixed(b"\xff" * 4)
    wants = Writer()
    wants.varint(0)
    wants.varint(big // 4)
    wants.fixed(os.urandom(4 * (big // 4)))
    pairs = Writer()
    for a, b in zip(forged[:1500:2], forged[1:1500:2], strict=False):
        pairs.blob(a)
        pairs.blob(b)
    hello = {
        "t": "hello",
        "v": 3,
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
            "sync ranges: one huge id list",
            State.WAIT_RANGES,
            pack({"t": "ranges", "r": b"", "w": b"", "i": idlist.getvalue()}),
        ),
        (
            "sync ranges: max fingerprint ranges",
            State.WAIT_RANGES,
            pack({"t": "ranges", "r": b"", "w": b"", "i": fps.getvalue()}),
        ),
        (
            "sync ranges: a list claiming 2^40 ids",
            State.WAIT_RANGES,
            pack(
                {
                    "t": "ranges",
                    "r": b"",
                    "w": b"",
                    "i": b"\x00\x01\x00\x00" + encode_varint(2**41 + 1),
                }
            ),
        ),
        (
            "sync ranges: max wants",
            State.WAIT_RANGES,
            pack({"t": "ranges", "r": b"", "w": wants.getvalue(), "i": b""}),
        ),
        (
            "sync ranges: max forged records",
            State.WAIT_RANGES,
            pack({"t": "ranges", "r": _blob(forged, big), "w": b"", "i": b""}),
        ),
        (
            "sync entries: evidence alone, max forged",
            State.WAIT_ENTRIES,
            pack({"t": "evidence", "ev": pairs.getvalue()}),
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


def _signed(body: object, seed: int = 9, scope: str = "eu") -> bytes:
    """A record signed over fields packed as given (no canonical checks on the way)."""
    ident = identities(1, seed=seed)[0]
    fields = [2, ident.public, "need", "k", 1, 0, scope, body]
    unsigned = msgpack.packb(fields, use_bin_type=True)
    return msgpack.packb([*fields, ident.sign(DOMAIN + unsigned)], use_bin_type=True)


def record_inputs() -> list[tuple[str, bytes]]:
    deep: object = "x"
    for _ in range(4):
        deep = [deep] * 8  # 4,096 leaves in 4 levels
    two_char = [[f"{i:02}"[-2:] for i in range(200)] for _ in range(25)]  # 5,000 strings
    negatives = [[-32] * 250 for _ in range(50)]  # 12,500 ints of one byte each
    return [
        ("record: container bomb", _bomb_record()),
        ("record: fan-out nesting", _signed({"a": deep})),
        ("record: 5,000 two-character strings", _signed({"a": two_char})),
        ("record: 12,500 negative fixints", _signed({"a": negatives})),
        ("record: 16 KiB random after an array header", b"\x99" + os.urandom(16 * 1024 - 1)),
        ("record: 16 KiB string", _signed({"note": "x" * 16000})),
    ]


def _line(request: dict[str, object]) -> bytes:
    return json.dumps(request, separators=(",", ":")).encode() + b"\n"


def _fill(head: bytes, unit: bytes, tail: bytes, size: int = control.MAX_REQUEST) -> bytes:
    """`head`, `unit` repeated, `tail`: a request line of about `size` bytes."""
    n = (size - len(head) - len(tail)) // len(unit)
    return head + unit * n + tail + b"\n"


def control_inputs() -> list[tuple[str, bytes]]:
    limit = control.MAX_REQUEST
    big_int = b"9" * 4300  # the most digits Python converts
    probe = PAYLOAD_PROBE.encode()
    nest = b"[" * 28 + b"1" + b"]" * 28  # 31 levels with the request around it
    return [
        ("control: 64 KiB of '['", b"[" * limit + b"\n"),
        ("control: a line of 64 KiB + 1, no newline", b"x" * (limit + 1)),
        ("control: a 1 MiB line", b"x" * (1 << 20) + b"\n"),
        (
            "control: 28-deep lists, 64 KiB of them",
            _fill(b'{"op":"status","args":{"a":[', nest + b",", b"1]}}"),
        ),
        ("control: 64 KiB of empty maps", _fill(b'{"op":"status","args":{"a":[', b"{},", b"{}]}}")),
        (
            "control: 64 KiB of empty lists",
            _fill(b'{"op":"status","args":{"a":[', b"[],", b"[]]}}"),
        ),
        (
            "control: 64 KiB of distinct keys",
            _line({"op": "status", "args": {f"{k:x}": 0 for k in range(limit // 10)}}),
        ),
        (
            "control: 64 KiB of distinct ints",
            _fill(b'{"op":"gov_proposal_create","args":{"options":[', b"1234567,", b"1]}}"),
        ),
        ("control: 64 KiB of floats", _fill(b'{"op":"status","args":{"a":[', b"1e300,", b"1]}}")),
        (
            "control: 64 KiB of 4,300-digit ints",
            _fill(b'{"op":"balance","args":{"depth":[', big_int + b",", b"1]}}"),
        ),
        ("control: a 4,301-digit int", b'{"op":"balance","args":{"depth":9%s}}\n' % big_int),
        ("control: brackets in a string", _fill(b'{"op":"status","args":{"s":"', b"[{", b'"}}')),
        ("control: escaped quotes", _fill(b'{"op":"status","args":{"s":"', b'\\"', b'"}}')),
        ("control: \\u escapes", _fill(b'{"op":"status","args":{"s":"', b"\\u0663", b'"}}')),
        (
            "control: 64 KiB of two-byte UTF-8",
            _fill(b'{"op":"post","args":{"note":"', "\u00e9".encode(), b'"}}'),
        ),
        ("control: a 64 KiB op name", _fill(b'{"op":"', b"x", b'"}')),
        ("control: depth 1e18", _line({"op": "balance", "args": {"depth": 1e18}})),
        ("control: depth 10**18", _line({"op": "balance", "args": {"depth": 10**18}})),
        (
            "control: wrong types",
            _line({"op": "post", "args": {"kind": 1, "qty": 5, "item": ["x"], "unit": {}}}),
        ),
        ("control: unknown op", _line({"op": "rm -rf", "args": {}})),
        ("control: payload -1", _line({"op": PAYLOAD_PROBE, "payload": -1})),
        ("control: payload 2**64", _line({"op": PAYLOAD_PROBE, "payload": 2**64})),
        ("control: payload to an op without one", b'{"op":"status","payload":3}\nabc'),
        (
            "control: payload over the op's limit",
            _line({"op": PAYLOAD_PROBE, "payload": PROBE_PAYLOAD + 1}) + b"x" * PROBE_PAYLOAD,
        ),
        (
            "control: 1 MiB payload",
            _line({"op": PAYLOAD_PROBE, "payload": PROBE_PAYLOAD}) + b"x" * PROBE_PAYLOAD,
        ),
        (
            "control: 1 MiB claimed, 64 KiB sent",
            b'{"op":"%s","payload":%d}\n' % (probe, PROBE_PAYLOAD) + b"x" * limit,
        ),
    ]


# --- running ----------------------------------------------------------------------


def _gossip_fn(data: bytes) -> Callable[[], object]:
    core = _core()
    return lambda: core.validate_gossip(PART, data)


def _sync_fn(state: State, data: bytes) -> Callable[[], object]:
    core = _core()
    initiator = state in (State.WAIT_BUCKETS, State.WAIT_RANGES)
    role = Role.INITIATOR if initiator else Role.RESPONDER
    session = SyncSession(core.replica, PARTS, role, salt=b"s" * 16)
    session.state = state
    session.partitions = [PART]
    session._bits = 10
    session._entry_units = sorted(session._my_units())[:1] or [(0, bytes(16))]

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


def _control_fn(server: ControlServer, data: bytes) -> Callable[[], object]:
    return lambda: server.request(data)  # a crash (ControlCrash) stops the bench


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


Row = tuple[str, str, int, float, int]  # surface, input, bytes, CPU s, peak bytes
SMALL = 4096


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller inputs, one repeat")
    args = ap.parse_args()
    repeat = 1 if args.quick else 3
    rows: list[Row] = []
    for name, data in gossip_inputs(args.quick):
        cpu, mem = measure(lambda d=data: _gossip_fn(d), repeat)
        rows.append(("gossip", name, len(data), cpu, mem))
    for name, state, data in sync_inputs(args.quick):
        cpu, mem = measure(lambda s=state, d=data: _sync_fn(s, d), repeat)
        rows.append((f"sync {state.value}", name, len(data), cpu, mem))
    for name, data in record_inputs():
        cpu, mem = measure(lambda d=data: _record_fn(d), repeat)
        rows.append(("record decode", name, len(data), cpu, mem))
    with ControlServer() as server:
        for name, data in control_inputs():
            cpu, mem = measure(lambda d=data: _control_fn(server, d), repeat)
            rows.append(("control", name, len(data), cpu, mem))
    print(f"{'input':48} {'bytes':>10} {'CPU ms':>9} {'us/byte':>8} {'peak KiB':>9} {'B/byte':>7}")
    for _, name, n, cpu, mem in rows:
        print(
            f"{name:48} {n:>10,} {cpu * 1e3:>9.1f} {cpu * 1e6 / n:>8.3f} "
            f"{mem / 1024:>9.1f} {mem / n:>7.2f}"
        )
    print()
    print("worst per surface: per byte over inputs of 4 KiB and more; below, the largest")
    print("absolute CPU and peak of an input under 4 KiB (fixed costs)")
    print(f"{'surface':18} {'us/byte':>8} {'B/byte':>7}   {'small: CPU ms':>13} {'peak KiB':>9}")
    surfaces = list(dict.fromkeys(r[0] for r in rows))
    for surface in surfaces:
        _summary(surface, [r for r in rows if r[0] == surface])
    _summary("ALL", rows)
    large = [r for r in rows if r[2] >= SMALL]
    cpu = max(large, key=lambda r: r[3] / r[2])
    mem = max(large, key=lambda r: r[4] / r[2])
    print(f"worst CPU: {cpu[3] * 1e6 / cpu[2]:.3f} us/byte ({cpu[1]}); goal <= 10")
    print(f"worst memory: {mem[4] / mem[2]:.2f} bytes/byte ({mem[1]}); goal <= 20")


def _summary(surface: str, rows: list[Row]) -> None:
    large = [r for r in rows if r[2] >= SMALL]
    small = [r for r in rows if r[2] < SMALL]
    us = max((r[3] * 1e6 / r[2] for r in large), default=float("nan"))
    per = max((r[4] / r[2] for r in large), default=float("nan"))
    ms = max((r[3] * 1e3 for r in small), default=float("nan"))
    kib = max((r[4] / 1024 for r in small), default=float("nan"))
    print(f"{surface:18} {us:>8.3f} {per:>7.2f}   {ms:>13.2f} {kib:>9.1f}")


if __name__ == "__main__":
    main()

"""Fuzz the edge: mutated records, gossip batches, every sync state, control requests.

Run: python bench/fuzz_edge.py [--inputs 1000000] [--seed 1] [--only control]

Seeds are real inputs (records, a gossip batch, every message of real anti-entropy
sessions between replicas that differ by tails, scattered records, an equivocation
and evidence; a request line for every control op and requests on each refusal path);
each input is a seed mutated by a few random byte-level or structure-level edits
(control lines also get brackets, quotes, escapes and huge numbers). An input passes if
its target returns or raises `AllmendeError` (a refusal with a reason); anything else
is a crash. Control requests go to the real `node.control.serve` on a Unix socket,
whose handler checks arguments against `node.ops.TABLE` as the daemon does: there a
crash is an "internal" answer, an error the server logs, or no answer at all. Each
input is timed (process CPU, so the server's thread counts; the garbage collector's
pauses are counted apart); the run reports crashes and inputs over 50 ms, and runs
each slow input again to tell its own cost from a pause of the machine or the process.
`tests/test_fuzz_edge.py` runs a small seeded slice of the same code.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import gc
import json
import logging
import random
import resource
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from factories import Author, identities

from node import control
from node.core import NodeCore, Source, encode_batch
from node.crdt.encoding import Writer
from node.crdt.replica import Replica
from node.crdt.sync import Role, SyncSession
from node.errors import AllmendeError, LocalError
from node.identity import Identity
from node.ops import TABLE, OpSpec, Param, check_args

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
    mutator: Callable[[bytes, random.Random, list[bytes]], bytes] = field(
        default=lambda d, r, s: mutate(d, r, s)
    )


def _label(result: Any) -> str:
    if result.rejected:
        return ",".join(sorted(result.rejected))
    return "stored" if result.stored else "known"


def build_targets(rng: random.Random, server: ControlServer) -> list[Target]:
    """Every target; the control one talks to `server`."""
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

    # The other messages a waiting side may get: "done" instead of buckets, evidence
    # alone instead of entries, and evidence (a real equivocation) where it may ride.
    ev = Writer()
    ev.blob(one.raw)
    ev.blob(two.raw)
    evidence = ev.getvalue()
    pack = msgpack.packb
    extra = {
        "wait-buckets": [
            pack({"t": "done"}),
            pack({"t": "buckets", "parts": [], "evparts": [PART], "ev": evidence}),
        ],
        "wait-entries": [
            pack({"t": "evidence", "ev": evidence}),
            pack({"t": "entries", "b": b"", "e": b"", "ev": evidence}),
        ],
    }
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

        targets.append(Target(f"sync {state}", [seed, *extra.get(state, [])], run_sync))

    targets.append(control_target(server))
    return targets


# --- the control socket ---------------------------------------------------------------

# A bench-only op that takes a payload of up to 1 MiB, beside the table's own: payload
# sizes are read, refused and cut short by the real reader whatever the table holds.
PAYLOAD_PROBE = "payload-probe"
PROBE_PAYLOAD = 1 << 20


class ControlCrash(Exception):
    """The control server failed on an input instead of refusing it."""


def _ops() -> dict[str, OpSpec]:
    return {**TABLE, PAYLOAD_PROBE: OpSpec(lambda ctx, args: None, max_payload=PROBE_PAYLOAD)}


class ControlServer:
    """`node.control.serve` on a real Unix socket, on a trio loop in a thread.

    Its handler does what the daemon's does before an op runs: look the op up in
    `node.ops.TABLE` and check the arguments against the op's declared parameters
    (`check_args`); then it answers with the op's name instead of running it. Errors the
    server logs (`allmende.control`) are collected: each one is a crash.
    """

    def __init__(self, check: Callable[[str, OpSpec, dict[str, Any]], Any] = check_args) -> None:
        """`check` stands for `check_args` (a test gives a broken one)."""
        self.ops = _ops()
        self._check = check
        self.errors: list[str] = []
        self._dir = tempfile.TemporaryDirectory(prefix="allmende-fuzz-")
        self.path = Path(self._dir.name) / "control.sock"
        self._box: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        self._log = logging.getLogger("allmende.control")
        self._capture = _Capture(self.errors)

    async def handle(self, op: str, args: dict[str, Any], progress: object) -> Any:
        spec = self.ops.get(op)
        if spec is None:
            raise LocalError(f"unknown control operation {op!r}")
        checked = self._check(op, spec, args)
        return {"op": op, "args": len(checked)}

    def max_payload(self, op: str) -> int:
        spec = self.ops.get(op)
        return spec.max_payload if spec is not None else 0

    def __enter__(self) -> ControlServer:
        ready = threading.Event()

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                self._box["stop"] = nursery.cancel_scope.cancel
                self._box["token"] = trio.lowlevel.current_trio_token()
                serve = functools.partial(
                    control.serve, self.path, self.handle, max_payload=self.max_payload
                )
                await nursery.start(serve)
                ready.set()

        def run() -> None:
            try:
                trio.run(main)
            except BaseException as exc:  # reported by request() as a crash
                self._box["error"] = exc
            finally:
                self._box["stopped"] = True
                ready.set()

        self._log.addHandler(self._capture)
        self._saved_propagate = self._log.propagate
        self._log.propagate = False
        self._thread = threading.Thread(target=run, name="control-fuzz", daemon=True)
        self._thread.start()
        if not ready.wait(10) or "error" in self._box:
            self.__exit__()
            raise RuntimeError(f"the control server did not start: {self._box.get('error')!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if "stop" in self._box and not self._box.get("stopped"):
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._box["stop"], trio_token=self._box["token"])
        if self._thread is not None:
            self._thread.join(10)
        self._log.removeHandler(self._capture)
        self._log.propagate = self._saved_propagate
        self._dir.cleanup()

    def request(self, data: bytes) -> str:
        """Send `data` on a fresh connection; the server's answer, as a label.

        Raises:
            ControlCrash: no answer to a request, an internal error, a logged error or a
                server that stopped.
        """
        if self._box.get("stopped"):
            raise ControlCrash(f"the control server stopped: {self._box.get('error')!r}")
        self.errors.clear()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(control.REQUEST_TIMEOUT + 5)
            s.connect(str(self.path))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)  # the server sees where the request ends
            buf = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := s.recv(65536):
                    buf += chunk
        if self.errors:
            raise ControlCrash(self.errors[0])
        lines = buf.splitlines()
        if not lines:
            if data:
                raise ControlCrash("no answer to a request")
            return "silent probe"
        reply = json.loads(lines[-1])
        if reply.get("ok"):
            return "ok"
        error = reply["error"]
        if error["type"] != "user":
            raise ControlCrash(f"{error['type']}: {error['message']}")
        return _refusal(str(error["message"]))


def _refusal(message: str) -> str:
    """A refusal's kind, for the statistics (without the op's name or the values)."""
    for kind in ("takes no payload", "unknown argument", "unknown control operation"):
        if kind in message:
            return kind
    words = message.removeprefix("bad control request: ").split()
    if words and words[0].endswith(":"):  # an op's name
        words = words[1:]
    return " ".join(w for w in words[:3] if "'" not in w)


class _Capture(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.into.append(text)


def _example(p: Param) -> Any:
    if p.kind is int:
        return p.low if p.low is not None else 1
    return {str: "x", bool: True, list: [], dict: {}}.get(p.kind)


def control_seeds(ops: dict[str, OpSpec]) -> list[bytes]:
    """A well-formed request for every op, and requests on every refusal path."""
    seeds = []
    for op, spec in sorted(ops.items()):
        args = {name: _example(p) for name, p in spec.params.items()}
        request: dict[str, Any] = {"op": op, "args": args}
        if spec.max_payload:
            request["payload"] = 5
        seeds.append(json.dumps(request).encode() + b"\n" + b"12345" * bool(spec.max_payload))
    seeds += [
        b'{"op": "balance", "args": {"scope": "eu/de", "depth": 1e18}}\n',
        b'{"op": "balance", "args": {"scope": "eu/de", "depth": 1000000000000000000}}\n',
        b'{"op": "balance", "args": {"depth": "2", "item": ["x"]}, "progress": 1}\n',
        b'{"op": "post", "args": {"kind": "need", "qty": 5, "note": null, "x": 1}}\n',
        b'{"op": ["status"], "args": []}\n',
        b'{"op": "gov_proposal_create", "args": {"options": [{"id": "a"}, 1, null]}}\n',
        b'{"op": "gov_assembly_create", "args": {"committers": ["a", 2], "size": true}}\n',
        b'{"op": "no-such-op", "args": {}}\n',
        b'{"op": "status", "payload": 3}\nabc',
        b'{"op": "%s", "payload": 5}\nhello' % PAYLOAD_PROBE.encode(),
        b'{"op": "%s", "payload": 50}\nshort' % PAYLOAD_PROBE.encode(),
        b'{"op": "%s", "payload": -1}\n' % PAYLOAD_PROBE.encode(),
        b'{"op": "%s", "payload": 18446744073709551617}\n' % PAYLOAD_PROBE.encode(),
        b'{"op": "%s", "args": {"payload": 1}}\n' % PAYLOAD_PROBE.encode(),
        b"[" * 40 + b"]" * 40 + b"\n",
        b'{"op": "status", "args": {"s": "[[[[\\"\\\\\\"{{{"}}\n',
    ]
    return seeds


def mutate_text(data: bytes, rng: random.Random, seeds: list[bytes]) -> bytes:
    """Edits aimed at a control request: its JSON values (huge numbers, wrong types,
    deep nesting, another op, a payload size), brackets, quotes and escapes inserted
    anywhere, or `mutate`'s byte-level edits."""
    roll = rng.random()
    if roll < 0.25:
        return mutate(data, rng, seeds)
    if roll < 0.75:
        data = _mutate_request(data, rng)
        if roll < 0.65:
            return data
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3))):
        pos = rng.randrange(len(buf) + 1)
        piece = rng.choice(_JSON_PIECES)
        if rng.random() < 0.2:
            piece *= rng.choice((2, 16, 64))
        if rng.random() < 0.5 or not buf:
            buf[pos:pos] = piece
        else:
            buf[pos : pos + rng.choice((1, 2, 4))] = piece
    return bytes(buf)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


_JSON_VALUES: list[Callable[[], Any]] = [
    lambda: 1e18,
    lambda: 10**18,
    lambda: 10**30,
    lambda: int("9" * 4300),
    lambda: -(2**63),
    lambda: -1,
    lambda: 0,
    lambda: 1.5,
    lambda: float("nan"),
    lambda: float("inf"),
    lambda: "",
    lambda: "x" * 3000,
    lambda: "\u0663",  # an Arabic-Indic digit
    lambda: "2027-Q1\n",
    lambda: "a\u202eb",
    lambda: "\x00",
    lambda: None,
    lambda: True,
    lambda: [],
    lambda: ["x"] * 300,
    lambda: [{}] * 40,
    lambda: {},
    lambda: {str(k): k for k in range(100)},
    lambda: _nested(28),
    lambda: _nested(40),
]


def _mutate_request(data: bytes, rng: random.Random) -> bytes:
    """Change one thing in the JSON of a request line; keep its payload bytes."""
    head, newline, rest = data.partition(b"\n")
    try:
        request = json.loads(head)
    except ValueError:
        return data
    if not isinstance(request, dict):
        request = {"op": request}
    args = request.get("args")
    edit = rng.randrange(6)
    if edit == 0:
        request["op"] = rng.choice([*TABLE, PAYLOAD_PROBE, "", "x" * 500, None, 7])
    elif edit == 1 and isinstance(args, dict) and args:
        args[rng.choice(list(args))] = rng.choice(_JSON_VALUES)()
    elif edit == 2 and isinstance(args, dict):
        args[rng.choice(("payload", "x", "depth", "kind", "\u202e"))] = rng.choice(_JSON_VALUES)()
    elif edit == 3:
        sizes = (0, 1, len(rest), len(rest) + 1, PROBE_PAYLOAD, PROBE_PAYLOAD + 1, 2**64)
        request["payload"] = rng.choice((*sizes, -1, "5", 5.0, None, True))
    elif edit == 4:
        request[rng.choice(("args", "progress", "op"))] = rng.choice(_JSON_VALUES)()
    elif request:
        del request[rng.choice(list(request))]
    try:
        line = json.dumps(request).encode()
    except ValueError:
        return data
    tail = rest
    if rng.random() < 0.2:
        tail = rest[: rng.randrange(len(rest) + 1)] + rng.randbytes(rng.choice((0, 1, 64)))
    return line + (newline or b"\n") + tail


_JSON_PIECES = [
    b"[",
    b"]",
    b"{",
    b"}",
    b'"',
    b"\\",
    b'\\"',
    b"\n",
    b",",
    b":",
    b"1e18",
    b"1000000000000000000",
    b"-0",
    b"NaN",
    b"Infinity",
    b"null",
    b"true",
    b"\\u0000",
    b"\\ud800",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xae",
    b'"payload": 7',
    b'"progress": true',
    b'{"a": [',
]


def control_target(server: ControlServer) -> Target:
    """The control socket: request line, nesting, payload, every op's arguments."""
    return Target("control", control_seeds(server.ops), server.request, mutator=mutate_text)


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
    """What a run found. An input is slow if it took over 50 ms of process CPU time
    (the control server's thread counts) outside the garbage collector's pauses; a slow
    input is run again (with the collector off) to tell its own cost from a pause the
    run's heap caused. Wall-clock time on a shared machine also counts waiting for a
    core, so it is reported beside, not judged."""

    inputs: int = 0
    crashes: list[tuple[str, bytes, str]] = field(default_factory=list)
    # target, input, CPU seconds, CPU seconds when run again, what the process did
    slow: list[tuple[str, bytes, float, float, str]] = field(default_factory=list)
    worst: float = 0.0  # CPU seconds, collector pauses excluded
    worst_wall: float = 0.0
    slow_wall: int = 0
    gc_pauses: list[float] = field(default_factory=list)  # collector pauses over 50 ms
    per_target: Counter[str] = field(default_factory=Counter)
    worst_by_target: dict[str, float] = field(default_factory=dict)


class _GcClock:
    """CPU time spent in the garbage collector (gen 2 pauses grow with the run's heap)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.pauses: list[float] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.process_time()
        else:
            took = time.process_time() - self._start
            self.total += took
            if took > SLOW:
                self.pauses.append(took)


def _again(target: Target, data: bytes) -> float:
    """The least CPU time of three more runs of `data`, the collector off."""
    best = float("inf")
    gc.disable()
    try:
        for _ in range(3):
            start = time.process_time()
            with contextlib.suppress(Exception):
                target.run(data)
            best = min(best, time.process_time() - start)
    finally:
        gc.enable()
    return best


@contextlib.contextmanager
def edge_targets(seed: int) -> Iterator[list[Target]]:
    """Every target, with a control server running for as long as they are used."""
    with ControlServer() as server:
        yield build_targets(random.Random(seed), server)


def run(n: int, seed: int, progress: bool = False, only: str | None = None) -> Report:
    """Feed `n` mutated inputs, round robin over the targets (those whose name starts
    with `only`, if given)."""
    with edge_targets(seed) as targets:
        if only is not None:
            targets = [t for t in targets if t.name.startswith(only)]
        return _run(targets, n, random.Random(seed), progress)


def _run(targets: list[Target], n: int, rng: random.Random, progress: bool) -> Report:
    report = Report()
    gc_clock = _GcClock()
    gc.callbacks.append(gc_clock)
    try:
        _feed(targets, n, rng, progress, report, gc_clock)
    finally:
        gc.callbacks.remove(gc_clock)
    report.gc_pauses = gc_clock.pauses
    if progress:
        for t in targets:
            worst_ms = report.worst_by_target.get(t.name, 0.0) * 1000
            print(f"  {t.name:18} {report.per_target[t.name]:>8,} inputs, worst {worst_ms:5.1f} ms")
            print(f"  {'':18} {dict(t.stats.most_common(5))}")
    return report


def _feed(
    targets: list[Target],
    n: int,
    rng: random.Random,
    progress: bool,
    report: Report,
    gc_clock: _GcClock,
) -> None:
    t0 = time.perf_counter()
    cpu, wall = time.process_time, time.perf_counter
    for k in range(n):
        target = targets[k % len(targets)]
        data = target.mutator(rng.choice(target.seeds), rng, target.seeds)
        start, start_cpu, start_gc = wall(), cpu(), gc_clock.total
        start_thread, faults = time.thread_time(), resource.getrusage(resource.RUSAGE_SELF)
        try:
            label = target.run(data)
            target.stats[label if isinstance(label, str) else "ok"] += 1
        except AllmendeError as exc:
            target.stats[getattr(exc, "reason", "refused")] += 1
        except Exception:
            report.crashes.append((target.name, data, traceback.format_exc(limit=6)))
        took = wall() - start
        took_cpu = cpu() - start_cpu - (gc_clock.total - start_gc)
        report.worst = max(report.worst, took_cpu)
        report.worst_wall = max(report.worst_wall, took)
        worst = report.worst_by_target.get(target.name, 0.0)
        report.worst_by_target[target.name] = max(worst, took_cpu)
        if took_cpu > SLOW:
            now = resource.getrusage(resource.RUSAGE_SELF)
            note = (
                f"main thread {(time.thread_time() - start_thread) * 1000:.1f} ms, "
                f"page faults {now.ru_minflt - faults.ru_minflt}, "
                f"involuntary switches {now.ru_nivcsw - faults.ru_nivcsw}"
            )
            report.slow.append((target.name, data, took_cpu, _again(target, data), note))
        report.slow_wall += took > SLOW
        report.per_target[target.name] += 1
        report.inputs += 1
        if progress and k and k % 50_000 == 0:
            rate = k / (time.perf_counter() - t0)
            print(
                f"  {k:,} inputs, {len(report.crashes)} crashes, {len(report.slow)} slow, "
                f"{rate:,.0f}/s",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", help="only the targets whose name starts with this")
    args = ap.parse_args()
    t = time.perf_counter()
    report = run(args.inputs, args.seed, progress=True, only=args.only)
    took = time.perf_counter() - t
    print(
        f"{report.inputs:,} inputs in {took:.0f} s: {len(report.crashes)} crashes, "
        f"{len(report.slow)} over {SLOW * 1000:.0f} ms CPU (worst {report.worst * 1000:.1f} ms); "
        f"wall clock: {report.slow_wall} over {SLOW * 1000:.0f} ms "
        f"(worst {report.worst_wall * 1000:.1f} ms)"
    )
    for name, data, tb in report.crashes[:5]:
        print(f"--- crash in {name} on {data[:80]!r}\n{tb}")
    pauses = sorted(report.gc_pauses, reverse=True)
    print(
        f"garbage collector pauses over {SLOW * 1000:.0f} ms (not counted above): {len(pauses)}"
        + (f", longest {pauses[0] * 1000:.1f} ms" if pauses else "")
    )
    for name, data, secs, again, note in sorted(report.slow, key=lambda s: -s[2])[:5]:
        print(
            f"--- slow: {name}, {len(data)} bytes, {secs * 1000:.1f} ms CPU ({note}; "
            f"run again: {again * 1000:.1f} ms): {data[:120]!r}"
        )
    sys.exit(1 if report.crashes or report.slow else 0)


if __name__ == "__main__":
    main()

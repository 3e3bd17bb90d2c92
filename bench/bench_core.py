"""Core benchmarks: verify+merge vs bare Ed25519, store load, anti-entropy bytes, balance.

Run: python bench/bench_core.py [--quick]
Prints figures; CPU time (process_time) on one core; ratios where noise matters.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import nacl.bindings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from factories import Author, identities, run_session

from node.core import NodeCore, Source, batches, decode_batch
from node.crdt.record import signing_bytes
from node.crdt.replica import Replica
from node.identity import Identity
from node.planning import BalanceIndex
from node.store import Store

clock = time.process_time


def make_records(n_origins: int, per_origin: int, seed: int = 1, scopes=None):
    authors = [
        Author(i, scopes(k) if scopes else f"eu/de/r{k % 10}/c{k}")
        for k, i in enumerate(identities(n_origins, seed=seed))
    ]
    items = ["potatoes", "wheat", "milk", "electricity", "childcare", "bread", "eggs"]
    units = {
        "potatoes": "kg",
        "wheat": "t",
        "milk": "l",
        "electricity": "kWh",
        "childcare": "h",
        "bread": "kg",
        "eggs": "pcs",
    }
    out = []
    for a in authors:
        for k in range(per_origin):
            item = items[k % len(items)]
            if k % 2:
                out.append(a.need(f"n{k}", item=item, unit=units[item], qty=str(k + 1)))
            else:
                out.append(a.capacity(f"c{k}", item=item, unit=units[item], qty=f"{k}.5"))
    return out


def bench_merge(n: int) -> None:
    """Bare verify, `Replica.receive` and the node's gossip path, interleaved in one run
    (best of 3 each), so that the ratios compare like with like on a noisy machine."""
    recs = make_records(1000, max(1, n // 1000), scopes=lambda k: f"eu/de/r/c{k}")
    prepared = [(r.sig + signing_bytes(r.raw), r.origin) for r in recs]
    messages = batches(recs)
    best_v = best_m = best_g = best_i = float("inf")
    for _ in range(3):
        t = clock()
        for sm, pk in prepared:
            nacl.bindings.crypto_sign_open(sm, pk)
        best_v = min(best_v, clock() - t)
        replica = Replica()
        t = clock()
        for r in recs:
            replica.receive(r.raw)
        best_m = min(best_m, clock() - t)
        best_g = min(best_g, _time_gossip(_core(index=False), messages, len(recs)))
        # What the daemon runs: the same, with the balance index kept up to date.
        best_i = min(best_i, _time_gossip(_core(index=True), messages, len(recs)))
    print(f"verify (libsodium, bare): {len(recs) / best_v:,.0f} records/s")
    print(f"decode+validate+verify+merge (Replica.receive): {len(recs) / best_m:,.0f} records/s")
    print(f"merge overhead over bare verify: {best_m / best_v - 1:+.1%}  (goal <= +25%)")
    print(
        f"gossip path (NodeCore.validate_gossip, {len(messages)} messages of "
        f"{len(recs) // len(messages)} records): {len(recs) / best_g:,.0f} records/s, "
        f"{best_g / best_v - 1:+.1%} over bare verify; {best_v / best_g:.2f} of bare verify"
    )
    print(
        f"  with the balance index (the daemon's path): {len(recs) / best_i:,.0f} records/s, "
        f"{best_v / best_i:.2f} of bare verify (goal >= 0.8)"
    )


def _core(*, index: bool) -> NodeCore:
    """A node of the bench's region (admission off), optionally keeping the index."""
    me = Identity.from_seed(b"\x01" * 32)
    now = lambda: 1_800_000_000_000  # noqa: E731
    kw = {"index": BalanceIndex()} if index else {}
    return NodeCore(me.public, me.signer(), "eu/de/r/x", Replica(), now, rng=random.Random(1), **kw)


def _time_gossip(core: NodeCore, messages: list[bytes], expected: int) -> float:
    """CPU seconds for the node's gossip path over `messages`, all stored."""
    t = clock()
    for data in messages:
        core.validate_gossip("eu/de/r", data)
    spent = clock() - t
    assert len(core.replica) == expected
    return spent


def bench_pipeline(n: int) -> None:
    """The daemon's overlap, wall clock: while a worker thread verifies one message
    (libsodium releases the GIL), the loop screens the next and merges the last."""
    from concurrent.futures import ThreadPoolExecutor

    recs = make_records(1000, max(1, n // 1000), scopes=lambda k: f"eu/de/r/c{k}")
    prepared = [(r.sig + signing_bytes(r.raw), r.origin) for r in recs]
    messages = [decode_batch(d) for d in batches(recs)]
    best_v = best_p = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for sm, pk in prepared:
            nacl.bindings.crypto_sign_open(sm, pk)
        best_v = min(best_v, time.perf_counter() - t)
        core = _core(index=True)
        with ThreadPoolExecutor(1) as pool:
            t = time.perf_counter()
            pending = None
            for raws in messages:
                s = core.screen(raws, Source.GOSSIP, partition="eu/de/r")
                if pending is not None:
                    pending[1].result()
                    core.apply(pending[0])
                pending = (s, pool.submit(core.verify, s))
            assert pending is not None
            pending[1].result()
            core.apply(pending[0])
            best_p = min(best_p, time.perf_counter() - t)
        assert len(core.replica) == len(recs)
    print(
        f"  pipelined as the daemon does (verify in a worker thread, wall clock): "
        f"{len(recs) / best_p:,.0f} records/s, {best_v / best_p:.2f} of bare verify on one core"
    )


def bench_load(n: int) -> None:
    recs = make_records(1000, max(1, n // 1000))
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "db.sqlite")
        store.save(recs)
        best = float("inf")
        for _ in range(3):
            replica = Replica()
            t = clock()
            count = store.load_into(replica)
            best = min(best, clock() - t)
        store.close()
    print(
        f"load {count:,} stored records into a replica: {count / best:,.0f} records/s "
        f"(goal >= 250,000)"
    )


def bench_sync(total: int) -> None:
    recs = make_records(1000, total // 1000, scopes=lambda k: f"eu/de/r/c{k}")
    rng = random.Random(7)
    for missing in (0, 1, 100, 10_000):
        lost = set(rng.sample(range(len(recs)), missing))
        full, partial = Replica(), Replica()
        for i, r in enumerate(recs):
            full.insert_verified(r)
            if i not in lost:
                partial.insert_verified(r)
        missing_bytes = sum(len(recs[i].raw) for i in lost)
        for label, (ini, resp) in {"pull": (partial, full), "push": (full, partial)}.items():
            a, b = Replica(), Replica()
            a.load_trusted(ini.records())
            b.load_trusted(resp.records())
            i, r = run_session(a, b, ["eu/de/r"])
            assert a.digest() == b.digest()
            sent = i.stats.bytes_sent + r.stats.bytes_sent
            rts = max(i.stats.messages_sent, r.stats.messages_sent)
            budget = 1024 if missing == 0 else 1.5 * missing_bytes + 4096
            print(
                f"sync {len(recs):,} records, {missing:>6,} missing ({label}): {sent:>9,} bytes, "
                f"{rts} round trips; missing records are {missing_bytes:,} bytes; "
                f"budget {budget:,.0f} -> {'ok' if sent <= budget and rts <= 4 else 'OVER'}"
            )


def bench_sync_cpu(total: int, rounds: int = 5) -> None:
    """CPU of one session with one differing record, both sides together (per side in
    brackets): cold (the first session after a load, the replica's digests computed
    then) and steady (digests cached, as in a running node: one new record since the
    last session). Collected before each session, so a collector pause is not counted."""
    import gc

    from node.crdt.sync import Role, SyncSession, merge_received

    recs = make_records(1000, total // 1000 + 1, scopes=lambda k: f"eu/de/r/c{k}")
    per = total // 1000 + 1
    base = [r for k, r in enumerate(recs) if k % per != per // 2]
    extra = [r for k, r in enumerate(recs) if k % per == per // 2]  # mid-origin records
    rng = random.Random(5)

    def session(a: Replica, b: Replica) -> tuple[float, float]:
        i = SyncSession(a, ["eu/de/r"], Role.INITIATOR, salt=rng.randbytes(16))
        r = SyncSession(b, ["eu/de/r"], Role.RESPONDER)
        ti = tr = 0.0
        t = clock()
        msg = i.generate_message()
        ti += clock() - t
        while msg is not None:
            t = clock()
            r.receive_message(msg)
            got = r.take_received()
            reply = r.generate_message()
            tr += clock() - t
            merge_received(b, got)
            if reply is None:
                break
            t = clock()
            i.receive_message(reply)
            got = i.take_received()
            msg = i.generate_message()
            ti += clock() - t
            merge_received(a, got)
        return ti * 1000, tr * 1000

    for label in ("cold", "steady"):
        figures = []
        for _ in range(rounds):
            a, b = Replica(), Replica()
            a.load_trusted(base)
            b.load_trusted(base)
            if label == "steady":
                session(a, b)  # equal: computes and caches every digest
            b.insert_verified(extra[rng.randrange(len(extra))])
            gc.collect()
            figures.append(session(a, b))
            assert a.digest() == b.digest()
        both = sorted(x + y for x, y in figures)
        print(
            f"sync CPU, 1 record differing among {len(base):,} ({label}): "
            f"{both[0]:.1f}-{both[-1]:.1f} ms both sides "
            f"(initiator {min(x for x, _ in figures):.1f}-{max(x for x, _ in figures):.1f}, "
            f"responder {min(y for _, y in figures):.1f}-{max(y for _, y in figures):.1f}); "
            "goal <= 10 ms"
        )


def bench_balance() -> None:
    def scope(k: int) -> str:
        return f"eu/r{k % 10}/c{k}"

    recs = make_records(1000, 100, scopes=scope)  # 50 needs + 50 capacities per node
    replica = Replica()
    index = BalanceIndex()
    replica.add_listener(index)
    for r in recs:
        replica.insert_verified(r)
    for label, s in [("federation", "eu"), ("region", "eu/r3"), ("commune", "eu/r3/c13")]:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 0.5:
            rows = index.rows(s)
            n += 1
        ms = (time.perf_counter() - t0) / n * 1000
        print(
            f"balance {label} ({len(rows)} rows) over 1,000 nodes x 100 records: "
            f"{ms:.3f} ms per query (goal <= 50 ms)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    args = ap.parse_args()
    n = 5_000 if args.quick else 20_000
    bench_merge(n)
    bench_pipeline(n)
    bench_load(20_000 if args.quick else 100_000)
    bench_sync(10_000 if args.quick else 50_000)
    bench_sync_cpu(10_000 if args.quick else 50_000)
    bench_balance()


if __name__ == "__main__":
    main()

"""Balance benchmarks: index updates on merge, the start path, deep balance views.

Run: python bench/bench_balance.py [--quick] [--base DIR] [--rounds N]

* ``updates``: CPU per index update (the replica's listener calls, replayed), and the
  merge path (`Replica.insert_verified`) with the index attached against without.
* ``start``: the daemon's start path -- `NodeState` over a store of 100,000 records
  of 32 admitted founders (store load, admission, the balance index) -- in records/s;
  also as the daemon runs it (``new, resident``: `load_into(resident=True)`; with
  ``--base``, the base as well, ``old, resident``).
* ``view``: the `balance` op for ``eu --depth 2`` over 1,011 scopes (1,000 nodes x 100
  records), as the CLI asks it with ``--json``, from the op to the bytes of the
  control socket's reply line: cold (nothing cached), the daemon's `warm_up` after
  start, the first view after it, after a change, warm.

With ``--base DIR`` (an unpacked checkout of the code before, e.g.
``git archive <rev> | tar -x -C DIR``) every figure is taken for both, interleaved over
``--rounds`` rounds: ``updates`` in one process (the old `node/planning/balance.py` is
loaded beside the new), ``start`` and ``view`` in alternating subprocesses. Ratios are
new/old of the same round. CPU is process time.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.util
import inspect
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from factories import Author, identities  # noqa: E402

from node.crdt.record import Record  # noqa: E402
from node.crdt.replica import Replica  # noqa: E402

clock = time.process_time
ITEMS = {
    "potatoes": "kg",
    "wheat": "t",
    "milk": "l",
    "electricity": "kWh",
    "childcare": "h",
    "bread": "kg",
    "eggs": "pcs",
}


def intents(author: Author, per_origin: int, scope_of=None) -> list[Record]:
    out = []
    names = list(ITEMS)
    for k in range(per_origin):
        item = names[k % len(names)]
        scope = scope_of(k) if scope_of else None
        if k % 2:
            out.append(
                author.need(f"n{k}", item=item, unit=ITEMS[item], qty=str(k + 1), scope=scope)
            )
        else:
            out.append(
                author.capacity(f"c{k}", item=item, unit=ITEMS[item], qty=f"{k}.5", scope=scope)
            )
    return out


def federation_records(n_origins: int, per_origin: int) -> list[Record]:
    """1,000 nodes in eu/r<k mod 10>/c<k>: 1,011 scopes from eu down two levels."""
    authors = [Author(i, f"eu/r{k % 10}/c{k}") for k, i in enumerate(identities(n_origins, seed=1))]
    return [r for a in authors for r in intents(a, per_origin)]


# --- updates (in process, old beside new) ----------------------------------------------


def load_balance_module(root: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, root / "node/planning/balance.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def update_calls(n_origins: int, per_origin: int) -> list[tuple[Record | None, Record]]:
    """The listener calls a replica makes: first versions, then a third replaced."""
    recs = federation_records(n_origins, per_origin)
    rng = random.Random(3)
    later = []
    for r in rng.sample(recs, len(recs) // 3):
        body = dict(r.body or {})
        body["qty"] = str(rng.randint(1, 999))
        later.append(_resign(r, body))  # a newer version of the slot
    calls: list[tuple[Record | None, Record]] = []
    rep = Replica()
    rep.add_listener(lambda old, new: calls.append((old, new)))
    for r in [*recs, *later]:
        rep.insert_verified(r)
    return calls


_AUTHORS: dict[bytes, Author] = {}


def _resign(r: Record, body: dict[str, Any]) -> Record:
    a = _AUTHORS.get(r.origin)
    if a is None:
        ident = next(i for i in identities(1000, seed=1) if i.public == r.origin)
        a = _AUTHORS[r.origin] = Author(ident, r.scope)
    return a.write(r.kind, r.key, body, seq=r.seq + 10_000)


def bench_updates(new: ModuleType, old: ModuleType | None, rounds: int, quick: bool) -> None:
    calls = update_calls(200 if quick else 1000, 50)
    recs = [new_ for _, new_ in calls]
    mods = [("new", new)] + ([("old", old)] if old is not None else [])
    per: dict[str, list[float]] = {k: [] for k, _ in mods}
    merge: dict[str, list[float]] = {k: [] for k, _ in [("none", None), *mods]}
    for _ in range(rounds):
        for label, mod in mods:
            index = mod.BalanceIndex()
            t = clock()
            for o, n in calls:
                index(o, n)
            per[label].append((clock() - t) / len(calls) * 1e6)
            index.rows("eu")  # aggregates are built lazily: not part of an update
        for label, mod in [("none", None), *mods]:
            rep = Replica()
            if mod is not None:
                rep.add_listener(mod.BalanceIndex())
            t = clock()
            for r in recs:
                rep.insert_verified(r)
            merge[label].append((clock() - t) / len(recs) * 1e6)
    winners = list({(n.origin, n.kind, n.key): n for _, n in calls}.values())
    build: dict[str, list[float]] = {k: [] for k, _ in mods}
    for _ in range(rounds):
        for label, mod in mods:
            t = clock()
            if hasattr(mod.BalanceIndex, "build"):
                mod.BalanceIndex.build(winners)
            else:  # what start-up did before: one record at a time
                index = mod.BalanceIndex()
                for r in winners:
                    index.add(r)
            build[label].append(len(winners) / (clock() - t))
    print(f"index built from {len(winners):,} records (start-up):")
    for label in build:
        print(f"  {label}: {_range(build[label], ',.0f')} records/s")
    if old is not None:
        ratios = [n / o for n, o in zip(build["new"], build["old"], strict=True)]
        print(f"  speed new/old same round: {_range(ratios, '.2f')}")
    print(f"index update, {len(calls):,} listener calls (a third replacements):")
    for label in per:
        print(f"  {label}: {_range(per[label])} us per update")
    if old is not None:
        ratios = [n / o for n, o in zip(per["new"], per["old"], strict=True)]
        print(f"  new/old same round: {_range(ratios, '.2f')}")
    print(f"merge (Replica.insert_verified) of {len(recs):,} records:")
    for label in merge:
        print(f"  index {label}: {_range(merge[label])} us per record")
    for label, _ in mods:
        extra = [m / z - 1 for m, z in zip(merge[label], merge["none"], strict=True)]
        print(f"  index {label} over none: {_range([e * 100 for e in extra], '+.1f')} %")


def _range(xs: list[float], fmt: str = ".2f") -> str:
    lo, hi = min(xs), max(xs)
    return f"{lo:{fmt}}" if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}}-{hi:{fmt}}"


# --- start and view (one subprocess per figure, so old and new alternate) ---------------


def founders_store(path: Path, n: int) -> None:
    """100,000 records of 32 founders who signed the charter (all admitted, all counted)."""
    from node.governance.admission import Charter
    from node.store import Store

    ids = identities(32, seed=5)
    charter = Charter.of("bench", [i.public for i in ids])
    recs = []
    per = n // len(ids)
    for k, ident in enumerate(sorted(ids, key=lambda i: i.public)):
        a = Author(ident, f"eu/r{k % 10}/c{k}")
        recs.append(a.write("charter", charter.id, charter.body(), scope="eu"))
        recs += intents(
            a, per, scope_of=lambda j, k=k: f"eu/r{(k + j) % 10}/c{(k * 97 + j) % 1000}"
        )
    store = Store(path)
    store.save(recs)
    store.close()
    (path.parent / "charter.json").write_text(json.dumps(charter.body()))


def _node_state(db: Path, scope: str, *, store_charter: bool = True, resident: bool = False) -> Any:
    from node.config import Config
    from node.state import NodeState
    from node.store import Store

    ids = sorted(identities(32, seed=5), key=lambda i: i.public)
    charter = json.loads((db.parent / "charter.json").read_text())
    config = Config(name="bench", scope=scope, charter=charter)
    kw = {"resident": True} if resident else {}
    return NodeState(
        ids[0], config, Store(db), lambda: 1_800_000_000_000, rng=random.Random(1), **kw
    )


def child_start(db: Path, resident: bool = False) -> dict[str, float]:
    """The store load into a fresh replica, then the start path (`NodeState`).

    `resident`: both as the daemon runs them (`load_into(resident=True)`: what is
    loaded is frozen out of the collector's reach instead of walked at the end)."""
    from node.store import Store

    store = Store(db)
    t = clock()
    n = store.load_into(Replica(), **({"resident": True} if resident else {}))
    load = clock() - t
    store.close()
    if resident:
        gc.unfreeze()  # the replica above is garbage: the start path loads its own
        gc.collect()
    t = clock()
    state = _node_state(db, "eu/r0/c0", resident=resident)
    start = clock() - t
    rows = state.index.rows("eu")
    assert sum(r.nodes for r in rows) > 0, "nothing counted"
    state.store.close()
    return {"records": n, "load": n / load, "start": n / start}


def view_store(path: Path) -> None:
    from node.store import Store

    store = Store(path)
    store.save(federation_records(1000, 100))
    store.close()


def child_view(db: Path) -> dict[str, Any]:
    from node import control
    from node.config import Config
    from node.ops.node_ops import balance
    from node.state import NodeState
    from node.store import Store

    me = identities(1, seed=99)[0]
    state = NodeState(
        me, Config(name="bench", scope="eu/r0/c0"), Store(db), lambda: 1_800_000_000_000
    )
    # Count every record, as if their origins were admitted (the bench's records are
    # signed by 1,000 strangers, so that 1,011 scopes hold records): as admission off.
    state.core._counted = None
    for r in state.replica.records():
        state.index.add(r)

    class Ctx:
        config = state.config

    Ctx.state = state  # type: ignore[attr-defined]
    full = {"scope": "eu", "period": None, "item": None, "depth": 2, "limit": None, "offset": 0}
    paged = {**full, "limit": 20}  # the CLI's page (text output)
    some = next(r for r in state.replica.records() if r.scope == "eu/r3/c13")

    # The reply line as the control socket sends it (code before `reply_line`: the
    # reply was a dict, and the socket printed it with `json.dumps`).
    reply_line = getattr(control, "reply_line", None) or (
        lambda result: control._encode({"ok": True, "result": result})
    )

    def query(args: dict[str, Any], change: bool) -> tuple[float, bytes]:
        if change:  # a record of one commune changed since the last query
            state.index.remove(some)
            state.index.add(some)
        t = clock()
        out = reply_line(balance(Ctx(), args))  # type: ignore[arg-type]
        return (clock() - t) * 1000, out

    cold, out = query(full, False)
    got: dict[str, Any] = {"cold": cold}
    if hasattr(state, "warm_up"):
        # The daemon's start: `warm_up` runs after start, off the request path; then
        # the first view. Everything cached by the cold view above is dropped first.
        state.index.add_all(())
        state.replica.memo.clear()
        t = clock()
        for _ in state.warm_up():
            pass
        got["warm_up"] = (clock() - t) * 1000
        got["first"], first = query(full, False)
        assert first == out, "the view after warm_up differs"
    changed = min(query(full, True)[0] for _ in range(3))
    warm = min(query(full, False)[0] for _ in range(3))
    got.update(changed=changed, warm=warm)
    if "limit" in inspect.signature(state.balance).parameters:
        got["paged"] = min(query(paged, True)[0] for _ in range(3))
        got["paged_scopes"] = len(json.loads(query(paged, False)[1])["result"]["levels"])
    got["scopes"] = len(json.loads(out)["result"]["levels"])
    got["sha"] = hashlib.sha256(out).hexdigest()[:16]
    return got


def run_child(root: Path, part: str, db: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", part, "--db", str(db)],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"{part} ({root}) failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_subprocess(part: str, base: Path | None, rounds: int, db: Path) -> None:
    new_root = HERE.parent
    roots = [("new", new_root)] + ([("old", base)] if base is not None else [])
    got: dict[str, list[dict[str, Any]]] = {k: [] for k, _ in roots}
    if part == "start":  # and as the daemon starts (the base too, if it can)
        roots.append(("new, resident", new_root))
        if base is not None and "resident" in (base / "node/store.py").read_text():
            roots.append(("old, resident", base))
        for label, _ in roots:
            got[label] = []
    for i in range(rounds):
        order = roots if i % 2 == 0 else roots[::-1]
        for label, root in order:
            child = "start-resident" if label.endswith("resident") else part
            got[label].append(run_child(root, child, db))
    if part == "start":
        n = got["new"][0]["records"]
        print(f"start path (NodeState over a store of {n:,.0f} records, all counted):")
        for label in got:
            print(
                f"  {label}: store load {_range([g['load'] for g in got[label]], ',.0f')} "
                f"records/s; start {_range([g['start'] for g in got[label]], ',.0f')} records/s"
            )
        if base is not None:
            pairs = [("new", "old"), ("new, resident", "old")]
            if "old, resident" in got:
                pairs.append(("new, resident", "old, resident"))
            for label, base_label in pairs:
                for key in ("load", "start"):
                    r = [n[key] / o[key] for n, o in zip(got[label], got[base_label], strict=True)]
                    print(f"  {key} speed {label}/{base_label} same round: {_range(r)}")
    else:
        s = got["new"][0]
        print(f"balance eu --depth 2 as JSON ({s['scopes']} scopes), ms of CPU:")
        cases = ["cold", "changed", "warm", "paged", "warm_up", "first"]
        for label in got:
            print(
                f"  {label}: "
                + ", ".join(
                    f"{c} {_range([g[c] for g in got[label]], '.1f')}"
                    for c in cases
                    if c in got[label][0]
                )
            )
        if "paged_scopes" in s:
            print(f"  (paged: --limit 20, {s['paged_scopes']} scopes)")
        if base is not None:
            for c in ("cold", "first", "changed", "warm", "paged"):
                if c not in got["new"][0] or c not in got["old"][0]:
                    continue
                r = [n[c] / o[c] for n, o in zip(got["new"], got["old"], strict=True)]
                print(f"  {c} new/old same round: {_range(r, '.3f')}")
            same = {g["sha"] for label in got for g in got[label]}
            print(f"  JSON identical old/new: {len(same) == 1}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--base", type=Path, help="a checkout of the code to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--parts", default="updates,start,view")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.child.startswith("start"):
            got = child_start(args.db, resident=args.child == "start-resident")
        else:
            got = child_view(args.db)
        print(json.dumps(got))
        return
    parts = args.parts.split(",")
    if "updates" in parts:
        import node.planning.balance as new

        old = load_balance_module(args.base, "_old_balance") if args.base else None
        bench_updates(new, old, args.rounds, args.quick)
    with tempfile.TemporaryDirectory() as d:
        if "start" in parts:
            db = Path(d) / "start" / "db.sqlite"
            db.parent.mkdir()
            founders_store(db, 20_000 if args.quick else 100_000)
            bench_subprocess("start", args.base, args.rounds, db)
        if "view" in parts:
            db = Path(d) / "view" / "db.sqlite"
            db.parent.mkdir()
            view_store(db)
            bench_subprocess("view", args.base, args.rounds, db)


if __name__ == "__main__":
    main()

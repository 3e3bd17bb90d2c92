"""Citizens' assemblies by sortition: a fair panel lottery with a verifiable seed.

Records (validated in node.model): ``assembly`` {title, scope, size, quotas,
committers, beacon?} by the organising node; ``volunteer`` {consent} signed by a
member, keyed by the assembly id; the frozen pool (``pool`` head + ``poolset``
chunks of [member key, features], see :mod:`node.governance.freeze`) by the
organiser; ``commit`` {hash = sha256(secret), pool = pool hash} by each committer
node; ``seal`` {assembly = hash of the assembly body, pool, commits} by the
organiser; ``reveal`` {secret, seal = seal hash} by each committer node; ``panel``
{members, seed} by the organiser.

The order matters and every step is checkable:

1. The pool is frozen first, with each volunteer's features copied from their member
   record, so nobody can add volunteers or change features after seeing the seed.
2. Every committer checks the frozen pool against the member records it holds,
   commits to a secret and names the pool hash it saw.
3. The organiser seals: one record freezing the assembly's body (beacon,
   committers, quotas, size), the pool hash and every commit hash, before any
   reveal. A committer reveals only once the seal is held and freezes its own commit,
   and names the seal in its reveal; it never reveals for a second seal. So once
   secrets are known nothing the seed or the lottery depends on can change: a new
   quota, size, beacon or committer list no longer matches the seal, a new seal is
   named by no honest reveal, and a committer's swapped commit+reveal pair no longer
   matches the commit hash sealed. `verify` refuses each of these.
   The seed is SHA-256 over the assembly id, the pool hash, each committer's secret
   in committer order, and the public beacon if the assembly names one (e.g. a drand
   round published after the commits). One honest committer (or an unpredictable
   beacon) makes the seed unpredictable.
4. A missing reveal blocks the draw; there is no fallback. Withholding thus gives a
   committer a veto (it can stop the draw after seeing the other reveals, and force
   a new assembly), but never a choice between two panels: a fallback that drew
   without it would let the last revealer choose between "with my secret" and
   "without". A new assembly after a withheld reveal should use fresh committers or
   a beacon, and the withholding is public (its commit is there, its reveal is not).

The lottery is fair in the maximin sense (Flanigan et al., Nature 2021): among all
probability distributions over panels that satisfy the quotas, it maximises the
smallest selection probability of any volunteer that such a panel can include (one
the quotas rule out, say by a maximum of 0, gets 0 whatever the lottery). Only the
quota features matter, so volunteers with equal quota features are interchangeable:
the LP is over panel *compositions* (how many of each type), solved by column
generation with an exact
simplex (:mod:`node.governance.simplex`); averaging over interchangeable people
gives every volunteer of a type the same probability, which keeps the optimum. The
seed then picks a composition by its cumulative probability and, within each type,
the volunteers with the smallest SHA-256(seed, member key). Exact arithmetic and
canonical orders make the panel a pure function of the records: anyone re-runs it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from node.crdt.encoding import canonical, pack
from node.governance.errors import GovernanceError
from node.governance.freeze import FrozenState, chunk_entries, freeze_hash, gather
from node.governance.ledger import Eligibility, Ledger, body, object_id
from node.governance.panels import Problem, SearchLimit, best_composition, improve
from node.governance.simplex import IntegerSimplex

__all__ = [
    "Distribution",
    "Draw",
    "Verification",
    "commit_body",
    "derive_seed",
    "distribution",
    "draw",
    "params_hash",
    "pick_panel",
    "pool_plan",
    "reveal_body",
    "seal_body",
    "seal_hash",
    "status",
    "verify",
]

SECRET_DOMAIN = b"allmende/sortition/secret/1\x00"
SEED_DOMAIN = b"allmende/sortition/seed/1\x00"
PARAMS_DOMAIN = b"allmende/sortition/assembly/1\x00"
SEAL_DOMAIN = b"allmende/sortition/seal/1\x00"
# Up to this many compositions are listed and priced one by one; beyond, they are
# searched (node.governance.panels).
MAX_LISTED = 5_000
# Once the search finds an improving composition it looks this many nodes further for
# a better one: better columns, fewer rounds (counted, so still a pure function).
PRICE_BUDGET = 100
# Nodes a search for a first panel with a given type may take with unit weights.
COVER_NODES = 5_000
# Each pricing round first improves this many of the columns held (the best under the
# round's weights) by local search (node.governance.panels.improve); 0: no heuristic,
# every round searches exactly.
HEURISTIC_STARTS = 8
# At most this many improving columns enter the master per round.
COLUMNS_PER_ROUND = 4

Quotas = Mapping[str, Mapping[str, Sequence[int]]]
TypeKey = tuple[str | None, ...]


# --- the lottery (pure, no records) ---------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """A maximin-fair distribution over panel compositions.

    Attributes:
        features: the quota features, in order; a type is one value (or None) each.
        types: the types present in the pool, sorted.
        sizes: volunteers per type.
        compositions: (counts per type, probability), with probability > 0, sorted.
        probability: the selection probability of a volunteer of each type.
        minimum: the smallest selection probability among volunteers some panel
            can include (the maximin value).
    """

    features: tuple[str, ...]
    types: tuple[TypeKey, ...]
    sizes: tuple[int, ...]
    compositions: tuple[tuple[tuple[int, ...], Fraction], ...]
    probability: tuple[Fraction, ...]
    minimum: Fraction


def type_of(features: Mapping[str, str], quota_features: Sequence[str]) -> TypeKey:
    return tuple(features.get(f) for f in quota_features)


def _feasible(
    types: Sequence[TypeKey],
    sizes: Sequence[int],
    size: int,
    quotas: Quotas,
    features: Sequence[str],
) -> list[tuple[int, ...]] | None:
    """Every composition (count per type) of `size` that meets the quotas, or None if
    there are more than MAX_LISTED (then :mod:`node.governance.panels` searches)."""
    bounds = [
        (fi, v, lo_hi[0], lo_hi[1])
        for fi, f in enumerate(features)
        for v, lo_hi in sorted(quotas[f].items())
    ]
    out: list[tuple[int, ...]] = []
    counts = [0] * len(types)
    # Per bound: the volunteers of its value among types[prefix:], for every prefix,
    # and the count of its value on the panel so far (types past the walk's position
    # hold 0, so it is the count over the prefix).
    room_from = []
    for fi, v, _, _ in bounds:
        suffix = [0] * (len(types) + 1)
        for t in range(len(types) - 1, -1, -1):
            suffix[t] = suffix[t + 1] + (sizes[t] if types[t][fi] == v else 0)
        room_from.append(suffix)
    have = [0] * len(bounds)
    rest_from = [sum(sizes[t:]) for t in range(len(types) + 1)]

    def quota_ok(prefix: int, left: int, final: bool) -> bool:
        for b, (_, _, lo, hi) in enumerate(bounds):
            h = have[b]
            if h > hi or h + min(room_from[b][prefix], left) < lo or (final and h < lo):
                return False
        return True

    def place(t: int, k: int) -> None:
        delta = k - counts[t]
        counts[t] = k
        for b, (fi, v, _, _) in enumerate(bounds):
            if types[t][fi] == v:
                have[b] += delta

    class _TooMany(Exception):
        pass

    visited = [0]

    def walk(t: int, left: int) -> None:
        visited[0] += 1
        if len(out) > MAX_LISTED or visited[0] > 2 * MAX_LISTED:
            raise _TooMany
        if t == len(types):
            if left == 0 and quota_ok(t, 0, True):
                out.append(tuple(counts))
            return
        rest = rest_from[t + 1]
        for k in range(min(sizes[t], left), -1, -1):
            if left - k > rest:
                break
            place(t, k)
            if quota_ok(t + 1, left - k, False):
                walk(t + 1, left - k)
        place(t, 0)

    try:
        walk(0, size)
    except _TooMany:
        return None
    return sorted(out)


def _explain_infeasible(pool: Sequence[Mapping[str, str]], size: int, quotas: Quotas) -> str:
    if len(pool) < size:
        return f"the pool has {len(pool)} volunteers for a panel of {size}"
    for f, values in sorted(quotas.items()):
        lows = sum(b[0] for b in values.values())
        if lows > size:
            return f"the minimums for {f} add up to {lows}, more than the panel size {size}"
        for v, (lo, _) in sorted(values.items()):
            have = sum(1 for p in pool if p.get(f) == v)
            if have < lo:
                return f"quota {f}={v} needs at least {lo}, the pool has {have}"
    return "no panel of the pool meets all quotas at once"


class _ListedPricer:
    """Column generation over a listed set of compositions (few quota features)."""

    def __init__(self, feasible: list[tuple[int, ...]], sizes: Sequence[int]) -> None:
        self.feasible = feasible
        # Volunteers whom no panel meeting the quotas can include (say, a value with a
        # maximum of 0) get probability 0 whatever the lottery; the maximin is taken
        # over everyone else, or one such volunteer would make every lottery "maximin".
        self.rows = [t for t in range(len(sizes)) if any(c[t] for c in feasible)]

        def everybody(c: tuple[int, ...]) -> Fraction:
            return sum((Fraction(c[t], sizes[t]) for t in self.rows), Fraction(0))

        self.columns = (
            [max(feasible, key=lambda c: (everybody(c), [-x for x in c]))] if feasible else []
        )

    def price(
        self, weights: Sequence[Fraction], mu: Fraction, columns: list[tuple[int, ...]]
    ) -> list[tuple[int, ...]]:
        price, best = max(
            (
                (sum((w * x for w, x in zip(weights, c, strict=True)), Fraction(0)), c)
                for c in self.feasible
                if c not in columns
            ),
            key=lambda pc: (pc[0], [-x for x in pc[1]]),
            default=(Fraction(0), None),
        )
        return [] if best is None or price <= mu else [best]


def _problem(
    types: Sequence[TypeKey],
    sizes: Sequence[int],
    size: int,
    quotas: Quotas,
    features: Sequence[str],
) -> Problem:
    groups, bounds = [], []
    for fi, f in enumerate(features):
        values = sorted(quotas[f])
        index = {v: i for i, v in enumerate(values)}
        groups.append(tuple(index.get(t[fi] or "", -1) for t in types))
        bounds.append(tuple((int(quotas[f][v][0]), int(quotas[f][v][1])) for v in values))
    return Problem(tuple(sizes), size, tuple(groups), tuple(bounds))


def _integers(weights: Sequence[Fraction]) -> tuple[list[int], int]:
    """Weights scaled to integers by their common denominator (returned too)."""
    den = math.lcm(*(w.denominator for w in weights))
    return [int(w * den) for w in weights], den


class _SearchPricer:
    """Column generation with compositions found by branch and bound
    (:mod:`node.governance.panels`): for pools whose compositions are too many to list.

    The first columns are the composition best for everybody at once, then for each
    type it leaves out, a composition with that type (one column per type: a richer
    start takes fewer rounds of the master LP): a type for which the
    search finds none is on no panel (its volunteers get 0, as with listed
    compositions).
    """

    def __init__(self, problem: Problem, sizes: Sequence[int]) -> None:
        self.problem = problem
        everybody, _ = _integers([Fraction(1, n) for n in sizes])
        first = best_composition(problem, everybody, first=True)
        self.columns: list[tuple[int, ...]] = []
        self.rows: list[int] = []
        if first is None:
            return
        self.columns.append(first[1])
        # A composition with type t: first any (unit weights), for at most
        # COVER_NODES nodes; with weights of 0 for every other type the search can
        # wander for minutes on tight quotas. Then one worth more than `big` - 1 with
        # everybody's weights besides (they sum to less than `big` on any panel),
        # which steer the search the way the first column went.
        big = problem.size * max(everybody) + 1
        for t in range(len(sizes)):
            if any(c[t] for c in self.columns):
                self.rows.append(t)
                continue
            # Cheapest first: a seat moved to t from the first column by local search.
            lifted = [w + big if u == t else w for u, w in enumerate(everybody)]
            if HEURISTIC_STARTS:
                moved = improve(problem, lifted, first[1])[1]
                if moved[t]:
                    self.rows.append(t)
                    self.columns.append(moved)
                    continue
            unit = [1 if u == t else 0 for u in range(len(sizes))]
            try:
                with_t = best_composition(problem, unit, 0, first=True, limit=COVER_NODES)
            except SearchLimit:
                with_t = best_composition(problem, lifted, big - 1, first=True)
            if with_t is not None:
                self.rows.append(t)
                if with_t[1] not in self.columns:
                    self.columns.append(with_t[1])

    def price(
        self, weights: Sequence[Fraction], mu: Fraction, columns: list[tuple[int, ...]]
    ) -> list[tuple[int, ...]]:
        """Columns priced above `mu`, best first; [] proves that none exists.

        First the heuristic: the HEURISTIC_STARTS columns held that are worth most
        under `weights`, each improved by local search; those now above `mu` are the
        round's columns (up to COLUMNS_PER_ROUND), with no exact search. Only when the
        heuristic finds none does the exact budgeted search run: it either finds an
        improving composition (improved further by local search) or proves there is
        none, which ends the column generation, so the lottery stays exact.
        """
        ints, den = _integers(weights)
        # price > mu  <=>  sum(ints * counts) > mu * den, an integer compared with a
        # rational: > floor(mu * den).
        threshold = math.floor(mu * den)
        held = set(columns)

        def worth(c: Sequence[int]) -> int:
            return sum(w * k for w, k in zip(ints, c, strict=True))

        found: dict[tuple[int, ...], int] = {}
        if HEURISTIC_STARTS:
            starts = sorted(columns, key=lambda c: (-worth(c), c))[:HEURISTIC_STARTS]
            for start in starts:
                value, better = improve(self.problem, ints, start)
                if value > threshold and better not in held:
                    found[better] = value
        if not found:
            exact = best_composition(self.problem, ints, threshold, budget=PRICE_BUDGET)
            if exact is None or exact[1] in held:
                return []
            found[exact[1]] = exact[0]
            if HEURISTIC_STARTS:
                value, better = improve(self.problem, ints, exact[1])
                if better not in held:
                    found[better] = value
        ranked = sorted(found, key=lambda c: (-found[c], c))
        return ranked[:COLUMNS_PER_ROUND]


def distribution(pool: Sequence[Mapping[str, str]], size: int, quotas: Quotas) -> Distribution:
    """The maximin-fair distribution over panels of `size` from `pool` (features per
    volunteer) meeting `quotas` {feature: {value: [min, max]}}.

    Raises:
        GovernanceError: no panel meets the quotas (the message says which constraint).
    """
    features = tuple(sorted(quotas))
    type_counts: dict[TypeKey, int] = {}
    for p in pool:
        key = type_of(p, features)
        type_counts[key] = type_counts.get(key, 0) + 1
    types = tuple(sorted(type_counts, key=lambda t: tuple((v is None, v or "") for v in t)))
    sizes = tuple(type_counts[t] for t in types)
    listed = _feasible(types, sizes, size, quotas, features)
    pricer = (
        _ListedPricer(listed, sizes)
        if listed is not None
        else _SearchPricer(_problem(types, sizes, size, quotas, features), sizes)
    )
    if not pricer.columns:
        raise GovernanceError(
            "no panel meets the quotas: " + _explain_infeasible(pool, size, quotas)
        )
    rows = pricer.rows

    # Column generation: start from the compositions the pricer proposes (the one best
    # for everybody at once first), then add the composition the duals price highest
    # until none improves the optimum.
    # Variables [z, q_1..q_k]; per type t some panel includes, the row
    # z - sum_c q_c c_t / n_t <= 0 scaled by n_t to integers; and sum_c q_c <= 1.
    # Maximise z. The dual of a scaled row is the weight y_t / n_t of type t. Each new
    # column continues from the last optimal basis.
    columns = list(pricer.columns)
    lp = IntegerSimplex([[sizes[t]] for t in rows] + [[0]], [0] * len(rows) + [1], [1])
    for c in columns:
        lp.add_column([-c[t] for t in rows] + [1], 0)
    while True:
        sol = lp.solve()
        y, mu = sol.duals[:-1], sol.duals[-1]
        weights = [Fraction(0)] * len(types)
        for r, t in enumerate(rows):
            weights[t] = y[r]
        new = pricer.price(weights, mu, columns)
        if not new:
            break
        for best in new:
            columns.append(best)
            lp.add_column([-best[t] for t in rows] + [1], 0)
    q = sol.x[1:]
    comps = tuple(sorted((c, q[j]) for j, c in enumerate(columns) if q[j] > 0))
    total = sum((p for _, p in comps), Fraction(0))
    if total != 1:  # z = 0 leaves the sum slack; any lottery is then maximin
        comps = tuple((c, p / total) for c, p in comps) if total else ((columns[0], Fraction(1)),)
    prob = tuple(
        sum((p * Fraction(c[t], sizes[t]) for c, p in comps), Fraction(0))
        for t in range(len(types))
    )
    return Distribution(features, types, sizes, comps, prob, min(prob[t] for t in rows))


def _uniform(seed: bytes, label: bytes) -> Fraction:
    return Fraction(int.from_bytes(hashlib.sha256(seed + label).digest(), "big"), 2**256)


def pick_panel(
    dist: Distribution, pool: Mapping[bytes, Mapping[str, str]], seed: bytes
) -> tuple[tuple[int, ...], list[bytes]]:
    """Draw a panel: a composition by cumulative probability, then per type the
    volunteers with the smallest SHA-256(seed, key). Returns (composition, members)."""
    u = _uniform(seed, b"composition")
    acc = Fraction(0)
    chosen = dist.compositions[-1][0]
    for comp, p in dist.compositions:
        acc += p
        if u < acc:
            chosen = comp
            break
    by_type: dict[TypeKey, list[bytes]] = {}
    for key, feats in pool.items():
        by_type.setdefault(type_of(feats, dist.features), []).append(key)
    panel: list[bytes] = []
    for t, k in zip(dist.types, chosen, strict=True):
        ranked = sorted(by_type.get(t, []), key=lambda m: hashlib.sha256(seed + m).digest())
        panel.extend(ranked[:k])
    return chosen, sorted(panel)


def derive_seed(
    aid: str, pool_hash: str, secrets: Sequence[tuple[str, str]], beacon: str | None
) -> bytes:
    """SHA-256 over the assembly id, pool hash, (committer, secret) in committer order
    and the beacon."""
    h = hashlib.sha256(SEED_DOMAIN + aid.encode() + b"\x00" + bytes.fromhex(pool_hash))
    for committer, secret in sorted(secrets):
        h.update(bytes.fromhex(committer) + bytes.fromhex(secret))
    if beacon:
        h.update(b"beacon" + bytes.fromhex(beacon))
    return h.digest()


def meets_quotas(
    panel_features: Sequence[Mapping[str, str]], size: int, quotas: Quotas
) -> list[str]:
    """What a panel violates (empty if nothing)."""
    problems = []
    if len(panel_features) != size:
        problems.append(f"the panel has {len(panel_features)} members, the size is {size}")
    for f, values in sorted(quotas.items()):
        for v, (lo, hi) in sorted(values.items()):
            n = sum(1 for p in panel_features if p.get(f) == v)
            if not lo <= n <= hi:
                problems.append(f"{f}={v}: {n} on the panel, quota [{lo}, {hi}]")
    return problems


# --- from records -------------------------------------------------------------------


def _secret(node_seed: bytes, aid: str) -> bytes:
    # Derived from the node key: nothing to store between commit and reveal, and
    # still unknown to everybody else until revealed.
    return hashlib.sha256(SECRET_DOMAIN + node_seed + aid.encode()).digest()


def _assembly(ledger: Ledger, aid: str) -> tuple[Any, dict[str, Any], str]:
    a = ledger.find("assembly", aid)
    return a, body(a), object_id(a.origin, a.key)


def pool_plan(ledger: Ledger, aid: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The records (kind, key, body) freezing the pool: poolset chunks, then the head.

    The pool: members who volunteered for `aid` and are live members of a node under
    the assembly's scope, with their features from that member record.
    """
    a, ab, aid = _assembly(ledger, aid)
    entries = []
    for v in ledger.keyed("volunteer", aid):
        if v.body is None:
            continue
        if ledger.eligibility(v.origin, str(ab["scope"])) is not Eligibility.ELIGIBLE:
            continue
        entries.append([v.origin, ledger.features(v.origin, str(ab["scope"])) or {}])
    chunks = chunk_entries(entries)
    out: list[tuple[str, str, dict[str, Any]]] = [
        ("poolset", f"{a.key}/{i}", {"members": c}) for i, c in enumerate(chunks)
    ]
    out.append(
        (
            "pool",
            a.key,
            {"chunks": len(chunks), "count": len(entries), "hash": freeze_hash(entries)},
        )
    )
    return out


Pool = dict[bytes, dict[str, str]]


def _pool(ledger: Ledger, a: Any) -> tuple[Pool, str]:
    frozen = gather(ledger, a.origin, "pool", "poolset", a.key, "members")
    if frozen.state is FrozenState.ABSENT:
        raise GovernanceError("the pool is not frozen yet (assembly freeze)")
    if frozen.state is FrozenState.INCOMPLETE:
        raise GovernanceError(f"{len(frozen.missing_chunks)} pool chunk(s) not received yet")
    if frozen.state is FrozenState.INCONSISTENT:
        raise GovernanceError(f"the frozen pool is inconsistent: {frozen.problem}")
    return ({bytes(k): dict(f) for k, f in frozen.entries}, str(body(frozen.head)["hash"]))


def params_hash(ab: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of an assembly's body: what the seal freezes of it."""
    return hashlib.sha256(PARAMS_DOMAIN + pack(canonical(dict(ab)))).hexdigest()


def seal_hash(aid: str, sb: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a seal body for `aid`: what every reveal names."""
    return hashlib.sha256(
        SEAL_DOMAIN + aid.encode() + b"\x00" + pack(canonical(dict(sb)))
    ).hexdigest()


def _pool_disagreements(ledger: Ledger, ab: Mapping[str, Any], aid: str, pool: Pool) -> list[str]:
    """Frozen entries that are not volunteers, not live members under the scope, or
    whose frozen features differ from their member record as held now."""
    bad = []
    for key, feats in sorted(pool.items()):
        who = key.hex()[:12]
        if ledger.live(key, "volunteer", aid) is None:
            bad.append(f"{who} did not volunteer")
        elif ledger.eligibility(key, str(ab["scope"])) is not Eligibility.ELIGIBLE:
            bad.append(f"{who} is not a live member under {ab['scope']}")
        elif (ledger.features(key, str(ab["scope"])) or {}) != feats:
            bad.append(f"{who}: features in the pool differ from the member record")
    return bad


def commit_body(ledger: Ledger, aid: str, node_seed: bytes, me: bytes) -> dict[str, Any]:
    """This node's commit for `aid`, after checking the frozen pool against the member
    records held here (a committer vouches for the pool it names).

    Raises:
        GovernanceError: not a committer, the pool is not frozen here yet or disagrees
            with the member records, or the assembly is sealed already (a commit changed
            after the seal would only block the draw).
    """
    a, ab, aid = _assembly(ledger, aid)
    if me.hex() not in ab["committers"]:
        raise GovernanceError("this node is not one of the assembly's committers")
    if ledger.live(a.origin, "seal", a.key) is not None or ledger.live(me, "reveal", aid):
        raise GovernanceError("the assembly is sealed already; its commits cannot change")
    pool, pool_hash = _pool(ledger, a)
    bad = _pool_disagreements(ledger, ab, aid, pool)
    if bad:
        raise GovernanceError("the frozen pool disagrees with the records here: " + "; ".join(bad))
    return {"hash": hashlib.sha256(_secret(node_seed, aid)).hexdigest(), "pool": pool_hash}


def seal_body(ledger: Ledger, aid: str) -> dict[str, Any]:
    """The organiser's seal: the assembly's body, the pool and every commit, frozen
    before the first reveal.

    Raises:
        GovernanceError: pool not frozen, a commit missing or naming another pool, or a
            reveal already held (sealing after a reveal would freeze nothing).
    """
    a, ab, aid = _assembly(ledger, aid)
    _, pool_hash = _pool(ledger, a)
    commits, problems = {}, []
    for c in ab["committers"]:
        commit = ledger.live(bytes.fromhex(c), "commit", aid)
        if commit is None:
            problems.append(f"no commit from {c[:12]} yet")
        elif body(commit)["pool"] != pool_hash:
            problems.append(f"{c[:12]} committed to another pool")
        else:
            commits[c] = str(body(commit)["hash"])
        if ledger.live(bytes.fromhex(c), "reveal", aid) is not None:
            problems.append(f"{c[:12]} revealed before the seal")
    if problems:
        raise GovernanceError("cannot seal: " + "; ".join(problems))
    return {"assembly": params_hash(ab), "pool": pool_hash, "commits": commits}


def reveal_body(ledger: Ledger, aid: str, node_seed: bytes, me: bytes) -> dict[str, Any]:
    """This node's reveal, naming the seal it answers; refused until the seal is held
    here and freezes this node's own commit, the assembly as held here and the pool.

    A node reveals for one seal only: a second seal after a reveal could change the
    quotas, size or committers once the secrets are known, and draw again.

    Raises:
        GovernanceError: not a committer, own commit missing, no seal, the seal does
            not match what is held here, or this node revealed for another seal.
    """
    a, ab, aid = _assembly(ledger, aid)
    commit = ledger.live(me, "commit", aid)
    if commit is None:
        raise GovernanceError("commit first (assembly commit)")
    missing = [
        c[:12] for c in ab["committers"] if ledger.live(bytes.fromhex(c), "commit", aid) is None
    ]
    if missing:
        raise GovernanceError(
            f"waiting for the commits of {', '.join(missing)}: revealing "
            "before every commit is in would let a late committer "
            "choose the seed"
        )
    seal = ledger.live(a.origin, "seal", a.key)
    if seal is None:
        raise GovernanceError("waiting for the organiser's seal (assembly seal)")
    sb = body(seal)
    _, pool_hash = _pool(ledger, a)
    if sb["assembly"] != params_hash(ab) or sb["pool"] != pool_hash:
        raise GovernanceError("the seal does not match the assembly or pool held here")
    if sb["commits"].get(me.hex()) != body(commit)["hash"] or set(sb["commits"]) != set(
        ab["committers"]
    ):
        raise GovernanceError("the seal does not freeze this node's commit")
    sh = seal_hash(aid, sb)
    mine = ledger.live(me, "reveal", aid)
    if mine is not None and body(mine)["seal"] != sh:
        raise GovernanceError(
            "this node revealed for another seal already; revealing again would let "
            "the organiser draw twice"
        )
    return {"secret": _secret(node_seed, aid).hex(), "seal": sh}


@dataclass(frozen=True)
class Draw:
    aid: str
    seed: str
    pool_hash: str
    pool_size: int
    members: tuple[str, ...]
    composition: tuple[int, ...]
    dist: Distribution

    def panel_body(self) -> dict[str, Any]:
        return {"members": list(self.members), "seed": self.seed}

    def as_json(self) -> dict[str, Any]:
        d = self.dist
        return {
            "assembly": self.aid,
            "seed": self.seed,
            "pool_hash": self.pool_hash,
            "pool": self.pool_size,
            "panel": list(self.members),
            "features": list(d.features),
            "types": [
                {
                    "features": dict(zip(d.features, t, strict=True)),
                    "volunteers": n,
                    "probability": _frac(p),
                    "drawn": k,
                }
                for t, n, p, k in zip(
                    d.types, d.sizes, d.probability, self.composition, strict=True
                )
            ],
            "minimum_probability": _frac(d.minimum),
            "compositions": len(d.compositions),
        }


def _frac(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


@dataclass(frozen=True)
class _Frozen:
    """What the seed rests on, with what is wrong with it (check name -> problems)."""

    pool: Pool
    pool_hash: str
    secrets: list[tuple[str, str]]
    problems: dict[str, list[str]]
    seal: Any


def _frozen(ledger: Ledger, a: Any, ab: dict[str, Any], aid: str) -> _Frozen:
    """Gather the frozen inputs of the draw and everything newer than the freeze.

    The seal is the organiser's record after every commit and before any reveal. The
    organiser's own records are ordered by its sequence numbers: the assembly and the
    pool must be older than the seal, the panel newer. Other nodes' records are bound
    by hash: every commit must be the one the seal lists, every reveal must name the
    seal and be newer than its node's commit.
    """
    pool, pool_hash = _pool(ledger, a)
    problems: dict[str, list[str]] = {"seal": [], "commits": [], "reveals": []}
    seal = ledger.live(a.origin, "seal", a.key)
    if seal is None:
        problems["seal"].append("the assembly is not sealed (assembly seal)")
        sb: dict[str, Any] = {"commits": {}}
    else:
        sb = body(seal)
        if sb["assembly"] != params_hash(ab):
            problems["seal"].append(
                "the assembly (beacon, committers, quotas or size) changed after the seal"
            )
        elif a.seq > seal.seq:
            problems["seal"].append("the assembly record was rewritten after the seal")
        if sb["pool"] != pool_hash:
            problems["seal"].append("the pool changed after the seal")
        head = ledger.live(a.origin, "pool", a.key)
        n_chunks = 0 if head is None else int(body(head)["chunks"])
        chunks = [ledger.live(a.origin, "poolset", f"{a.key}/{i}") for i in range(n_chunks)]
        if any(r is not None and r.seq > seal.seq for r in [head, *chunks]):
            problems["seal"].append("the pool records were rewritten after the seal")
        if set(sb["commits"]) != set(ab["committers"]):
            problems["seal"].append("the seal's commits are not the assembly's committers")
    sh = seal_hash(aid, sb) if seal is not None else None
    secrets = []
    for c in ab["committers"]:
        commit = ledger.live(bytes.fromhex(c), "commit", aid)
        reveal = ledger.live(bytes.fromhex(c), "reveal", aid)
        if commit is None:
            problems["commits"].append(f"committer {c[:12]}: no commit")
            continue
        if body(commit)["pool"] != pool_hash:
            problems["commits"].append(
                f"committer {c[:12]}: committed to another pool "
                f"({body(commit)['pool'][:12]}, frozen {pool_hash[:12]})"
            )
        if seal is not None and sb["commits"].get(c) != body(commit)["hash"]:
            problems["commits"].append(f"committer {c[:12]}: commit changed after the seal")
        if reveal is None:
            problems["reveals"].append(f"committer {c[:12]}: no reveal (the draw is blocked)")
            continue
        rb = body(reveal)
        if sh is not None and rb["seal"] != sh:
            problems["reveals"].append(f"committer {c[:12]}: reveal names another seal")
        if reveal.seq < commit.seq:
            problems["reveals"].append(f"committer {c[:12]}: commit rewritten after its reveal")
        secret = str(rb["secret"])
        if hashlib.sha256(bytes.fromhex(secret)).hexdigest() != body(commit)["hash"]:
            problems["reveals"].append(f"committer {c[:12]}: reveal does not match its commit")
            continue
        secrets.append((c, secret))
    return _Frozen(pool, pool_hash, secrets, problems, seal)


def draw(ledger: Ledger, aid: str) -> Draw:
    """Derive the seed and draw the panel of `aid`.

    Raises:
        GovernanceError: pool not frozen, not sealed, a commit or reveal missing or
            invalid, anything changed after the seal, or no panel meets the quotas.
    """
    a, ab, aid = _assembly(ledger, aid)
    fz = _frozen(ledger, a, ab, aid)
    problems = [p for ps in fz.problems.values() for p in ps]
    if problems:
        raise GovernanceError("cannot draw: " + "; ".join(problems))
    if ledger.live(a.origin, "panel", a.key) is not None:
        raise GovernanceError("the panel is drawn already; `assembly verify` checks it")
    return _redo(aid, ab, fz)


def _redo(aid: str, ab: Mapping[str, Any], fz: _Frozen) -> Draw:
    seed = derive_seed(aid, fz.pool_hash, fz.secrets, ab.get("beacon"))
    pool = fz.pool
    dist = distribution([pool[k] for k in sorted(pool)], int(ab["size"]), ab["quotas"])
    comp, members = pick_panel(dist, pool, seed)
    return Draw(
        aid, seed.hex(), fz.pool_hash, len(pool), tuple(m.hex() for m in members), comp, dist
    )


@dataclass(frozen=True)
class Verification:
    """Result of re-checking a published panel: every check, passed or failed."""

    aid: str
    checks: tuple[tuple[str, bool, str], ...]
    draw: dict[str, Any] | None = field(default=None)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "assembly": self.aid,
            "ok": self.ok,
            "checks": [{"check": n, "ok": ok, "detail": d} for n, ok, d in self.checks],
            "failures": [f"{n}: {d}" for n, ok, d in self.checks if not ok],
            "draw": self.draw,
        }


def verify(ledger: Ledger, aid: str) -> Verification:
    """Re-derive the seed and the draw of `aid` and compare with its panel record.

    Checks, in order: the frozen pool (complete, matches its hash, every entry a
    volunteer who is a live member under the scope), the seal (assembly and pool
    unchanged since), commits (present, naming the frozen pool, the ones sealed),
    reveals (present, naming the seal, matching their commits), the panel record
    (present, newer than the seal, same seed, same members as the re-run draw), and
    the quotas and size on the published panel.

    The draw is re-run on the *frozen* pool: a member who edits their features after
    the freeze changes nothing (the difference is shown, not failed). The committers
    checked the frozen features against the member records when they committed.
    """
    a, ab, aid = _assembly(ledger, aid)
    checks: list[tuple[str, bool, str]] = []
    try:
        fz = _frozen(ledger, a, ab, aid)
    except GovernanceError as exc:
        return Verification(aid, (("pool", False, str(exc)),))
    pool = fz.pool
    bad = _pool_disagreements(ledger, ab, aid, pool)
    changed = [b for b in bad if "features" in b]
    bad = [b for b in bad if "features" not in b]
    detail = f"{len(pool)} volunteers, hash {fz.pool_hash[:16]}"
    if changed:
        detail += (
            f"; {len(changed)} changed their features since the freeze (the frozen ones count)"
        )
    checks.append(("pool", not bad, "; ".join(bad) or detail))
    okays = {
        "seal": "assembly, pool and commits unchanged since the seal",
        "commits": f"{len(ab['committers'])} committers, all on the frozen pool and sealed",
        "reveals": "every reveal names the seal and matches its commit",
    }
    for name, problems in fz.problems.items():
        checks.append((name, not problems, "; ".join(problems) or okays[name]))
    if any(fz.problems.values()):
        return Verification(aid, tuple(checks))
    redo_seed = derive_seed(aid, fz.pool_hash, fz.secrets, ab.get("beacon"))
    panel = ledger.live(a.origin, "panel", a.key)
    if panel is None:
        checks.append(("panel", False, "no panel published yet (assembly draw)"))
        return Verification(aid, tuple(checks))
    pb = body(panel)
    checks.append(
        (
            "seed",
            pb["seed"] == redo_seed.hex(),
            f"derived {redo_seed.hex()[:16]}, published {str(pb['seed'])[:16]}",
        )
    )
    try:
        redo = _redo(aid, ab, fz)
    except GovernanceError as exc:
        checks.append(("draw", False, str(exc)))
        return Verification(aid, tuple(checks))
    published = sorted(str(m) for m in pb["members"])
    extra = sorted(set(published) - set(redo.members))
    absent = sorted(set(redo.members) - set(published))
    same = not extra and not absent and len(published) == len(redo.members)
    if fz.seal is not None and panel.seq < fz.seal.seq:
        same = False
        extra_note = "the panel is older than the seal"
    else:
        extra_note = ""
    checks.append(
        (
            "panel",
            same,
            extra_note
            or (
                "matches the re-run draw"
                if not extra and not absent
                else "published but not drawn: "
                + (", ".join(m[:12] for m in extra) or "-")
                + "; drawn but not published: "
                + (", ".join(m[:12] for m in absent) or "-")
            ),
        )
    )
    panel_features = [pool.get(bytes.fromhex(m), {}) for m in published]
    violations = meets_quotas(panel_features, int(ab["size"]), ab["quotas"])
    not_in_pool = [m[:12] for m in published if bytes.fromhex(m) not in pool]
    if not_in_pool:
        violations.append("not in the pool: " + ", ".join(not_in_pool))
    checks.append(("quotas", not violations, "; ".join(violations) or "all quotas met"))
    return Verification(aid, tuple(checks), redo.as_json())


def status(ledger: Ledger, aid: str) -> dict[str, Any]:
    """Where an assembly stands: volunteers, pool, commits, reveals, panel."""
    a, ab, aid = _assembly(ledger, aid)
    frozen = gather(ledger, a.origin, "pool", "poolset", a.key, "members")
    panel = ledger.live(a.origin, "panel", a.key)
    return {
        "assembly": aid,
        **ab,
        "volunteers": sum(1 for v in ledger.keyed("volunteer", aid) if v.body is not None),
        "pool": frozen.state.value,
        "pool_size": frozen.count,
        "sealed": ledger.live(a.origin, "seal", a.key) is not None,
        "commits": [
            c for c in ab["committers"] if ledger.live(bytes.fromhex(c), "commit", aid) is not None
        ],
        "reveals": [
            c for c in ab["committers"] if ledger.live(bytes.fromhex(c), "reveal", aid) is not None
        ],
        "panel": None if panel is None else body(panel)["members"],
    }

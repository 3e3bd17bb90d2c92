"""Equal Shares with add1 completion at city scale: old (plain loop) vs new.

Run:
    python bench/bench_mes.py                       # 100 projects x 10k, 50k, 100k voters
    python bench/bench_mes.py --voters 10000 --old full

Instances are deterministic (seeded): 100 projects costing 20,000 to 2,000,000,
Zipf-like popularity, 3 to 15 approvals per ballot, budget a quarter of the total
cost (the shape of tests/cli/pb_gen.py's Warsaw-like files). For each it prints the
CPU time of `equal_shares` (add1), its increments and Equal Shares runs, and the old
algorithm (tests/governance/mes_reference.py, one run per increment): with
`--old sample` (default) the CPU time of 3 old runs, times the increments + 1 it
would make (an estimate: old runs cost about the same at every increment); with
`--old full` the whole old loop, checking its winners equal the new ones. The
`digest` printed for each run hashes every step (project, cap, effective votes), the
kept endowment, the increments and whether a limit stopped it: two implementations
with the same digest gave the same outcome bit for bit.

Prints figures; never asserts them.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "governance"))

import mes_reference  # noqa: E402

from node.governance.budget import BudgetResult, _votes, equal_shares  # noqa: E402


def instance(
    projects: int, voters: int, seed: int = 2024
) -> tuple[dict[str, int], list[frozenset[str]], int]:
    rng = random.Random(seed)
    ids = [str(100 + i) for i in range(projects)]
    costs = {p: rng.randrange(20_000, 2_000_000, 100) for p in ids}
    weights = [1 / (rank + 1) for rank in range(projects)]
    ballots = [frozenset(rng.choices(ids, weights, k=rng.randint(3, 15))) for _ in range(voters)]
    return costs, ballots, sum(costs.values()) // 4


def digest(result: BudgetResult) -> str:
    """A short hash of everything add1 decided."""
    text = repr(
        (
            [(s.project, s.cost, s.rule, s.payment_cap, s.effective_votes) for s in result.steps],
            result.voter_budget,
            result.increments,
            result.stopped_at_limit,
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--voters", type=int, action="append")
    parser.add_argument("--old", choices=("sample", "full", "skip"), default="sample")
    args = parser.parse_args()
    for voters in args.voters or [10_000, 50_000, 100_000]:
        costs, ballots, budget = instance(args.projects, voters)
        started = time.process_time()
        new = equal_shares(costs, ballots, budget)
        new_s = time.process_time() - started
        print(
            f"{args.projects} projects x {voters:,} voters: new {new_s:.1f} s CPU, "
            f"{new.increments} increments, {new.runs} runs "
            f"({new_s / new.runs:.2f} s/run), {len(new.winners)} winners, "
            f"stopped_at_limit={new.stopped_at_limit}, digest {digest(new)}",
            flush=True,
        )
        if args.old == "skip":
            continue
        groups = _votes(costs, ballots, budget)[1]
        n = len(ballots)
        if args.old == "full":
            started = time.process_time()
            _, steps, tried, _ = mes_reference.add1(costs, groups, budget, "cost", 10**9)
            old_s = time.process_time() - started
            same = tuple(s.project for s in steps) == new.winners and tried == new.increments
            print(f"  old {old_s:.1f} s CPU, {tried + 1} runs; same outcome: {same}")
        else:
            started = time.process_time()
            for k in range(3):
                mes_reference.mes(costs, groups, Fraction(budget + k * n, n), "cost")
            per_run = (time.process_time() - started) / 3
            old_s = per_run * (new.increments + 1)
            print(
                f"  old ~{old_s:.0f} s CPU (estimate: {per_run:.2f} s/run x "
                f"{new.increments + 1} runs); old/new {old_s / new_s:.1f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Planning rounds against the LP optimum over many seeded instances (issue 14).

Prints, per rule, how many LP-feasible instances converge, how close the needs served
come to the optimum, and the most rounds. Needs scipy (test extra). About a minute.

    python bench/bench_planning.py
"""

from __future__ import annotations

import statistics

from node.planning import rounds
from simnet import planning
from simnet.planning import PlanningScenario, run_planning


def sweep(rule: str) -> None:
    planning.plan = lambda *a, **k: rounds.plan(*a, rule=rule, **k)  # type: ignore[assignment]
    feasible = converged = infeasible = 0
    ratios: list[float] = []
    most = 0
    for nodes in (200, 300, 500):
        for seed in range(10, 30):
            r = run_planning(PlanningScenario(nodes=nodes, seed=seed), orders=0)
            if "ours_of_optimum" not in r["lp"]:
                infeasible += 1
                assert not r["ok"], (nodes, seed)  # no plan exists: the run must fail
                continue
            feasible += 1
            converged += r["ok"]
            ratios.append(r["lp"]["ours_of_optimum"])
            most = max(most, r["rounds"])
    print(
        f"{rule}: {converged}/{feasible} feasible instances converge "
        f"({infeasible} infeasible, all failed); served/optimum min {min(ratios):.3f} "
        f"median {statistics.median(ratios):.3f}; most rounds {most}"
    )


if __name__ == "__main__":
    for rule in rounds.RULES:
        sweep(rule)
